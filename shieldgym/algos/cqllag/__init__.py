"""CQLLag: Lagrangian Conservative Q-Learning for constrained MDPs, in the Stable-Baselines3 layout."""

from shieldgym.algos.cqllag.buffers import (
    CostDictReplayBuffer,
    CostDictReplayBufferSamples,
    CostReplayBuffer,
    CostReplayBufferSamples,
)
from shieldgym.algos.cqllag.cqllag import CheckpointError, CQLLag, TrainingDivergedError
from shieldgym.algos.cqllag.datasets import OfflineDataset, load_offline_dataset
from shieldgym.algos.cqllag.lagrange import LagrangeMultiplier, PIDLagrangeMultiplier, discounted_cost_limit
from shieldgym.algos.cqllag.policies import CnnPolicy, CostCritic, CQLLagPolicy, MlpPolicy, MultiInputPolicy
from shieldgym.algos.cqllag.safe_threshold import SafeThresholdTuning, ThresholdResult, tune_safe_threshold

__all__ = [
    "CQLLag",
    "CQLLagPolicy",
    "CheckpointError",
    "CnnPolicy",
    "CostCritic",
    "CostDictReplayBuffer",
    "CostDictReplayBufferSamples",
    "CostReplayBuffer",
    "CostReplayBufferSamples",
    "LagrangeMultiplier",
    "MlpPolicy",
    "MultiInputPolicy",
    "OfflineDataset",
    "PIDLagrangeMultiplier",
    "SafeThresholdTuning",
    "ThresholdResult",
    "TrainingDivergedError",
    "discounted_cost_limit",
    "load_offline_dataset",
    "tune_safe_threshold",
]
