"""Stable-Baselines3 features extractor over raw VLPM observations; only adapters and heads train.

Use it with the ``mode="raw"`` observations of :class:`~shieldgym.wrappers.vlpm.VLPMObservation`
(a Dict with ``"rgb"``, optional ``"depth"``, ``"proprio"``, ``"instruction"`` and
``"instruction_mask"``)::

    from stable_baselines3 import SAC
    from shieldgym.vlpm import VLPMExtractor

    policy_kwargs = dict(
        features_extractor_class=VLPMExtractor,
        features_extractor_kwargs=dict(backbone="openai/clip-vit-base-patch32", features_dim=64),
        share_features_extractor=True,
    )
    model = SAC("MultiInputPolicy", env, policy_kwargs=policy_kwargs)

Each extractor (SB3 builds one for the actor, the critic and the target critic) owns its adapters
and heads; all of them share one frozen backbone, which is never part of the policy's parameters
or saved weights. Pass the backbone as a hub id or path (loaded once per process) so that SB3's
saved ``policy_kwargs`` stay small; a model object also works. Keep SB3's ``normalize_images=True``
(the default): the extractor expects images in [0, 1] after SB3's preprocessing, or ``uint8``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Literal

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from shieldgym.vlpm.adapters import DEFAULT_BOTTLENECK
from shieldgym.vlpm.backbone import load_backbone
from shieldgym.vlpm.encoder import VLPMEncoder

__all__ = ["VLPMExtractor", "shared_backbone"]


@functools.lru_cache(maxsize=4)
def shared_backbone(name_or_path: str, dtype: Literal["float32", "bfloat16"] = "float32") -> nn.Module:
    """Load a frozen backbone once per process and return the same object on later calls."""
    return load_backbone(name_or_path, dtype=dtype)


class VLPMExtractor(BaseFeaturesExtractor):
    """Features extractor ``Dict obs -> R^features_dim`` built on :class:`~shieldgym.vlpm.encoder.VLPMEncoder`.

    Args:
        observation_space: a Dict space with at least ``rgb_key``.
        backbone: frozen CLIP/SigLIP model, or its hub id / local path.
        features_dim: embedding size ``k``.
        bottleneck: adapter bottleneck width.
        towers: towers that get adapters.
        depth_range: ``(near, far)`` clip range for depth.
        adapters_path: optional adapter file (:func:`~shieldgym.vlpm.adapters.save_adapters`) to start from.
        pretrained: optional InfoNCE checkpoint (:func:`~shieldgym.pretrain.infonce.pretrain`'s ``checkpoint``):
            starts from its adapters, depth stem and visual head (the heads it lacks stay freshly initialised).
        rgb_key, depth_key, proprio_key, instruction_key, mask_key: observation keys (missing
            optional keys are simply not used).
        seed: seed of the adapters' and heads' initialisation.
        dtype: backbone dtype when ``backbone`` is a name.

    Raises:
        ValueError: the observation space is not a Dict or lacks ``rgb_key``.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Dict,
        backbone: nn.Module | str,
        features_dim: int = 64,
        *,
        bottleneck: int = DEFAULT_BOTTLENECK,
        towers: Sequence[str] = ("vision",),
        depth_range: tuple[float, float] = (0.0, 3.0),
        adapters_path: str | None = None,
        pretrained: str | None = None,
        rgb_key: str = "rgb",
        depth_key: str = "depth",
        proprio_key: str = "proprio",
        instruction_key: str = "instruction",
        mask_key: str = "instruction_mask",
        seed: int | None = None,
        dtype: Literal["float32", "bfloat16"] = "float32",
    ) -> None:
        if not isinstance(observation_space, gym.spaces.Dict) or rgb_key not in observation_space.spaces:
            raise ValueError(f"VLPMExtractor needs a Dict observation space with an {rgb_key!r} key, got {observation_space}")
        super().__init__(observation_space, features_dim)
        model = shared_backbone(backbone, dtype) if isinstance(backbone, str) else backbone
        spaces = observation_space.spaces
        self.keys = {
            "rgb": rgb_key,
            "depth": depth_key,
            "proprio": proprio_key,
            "instruction": instruction_key,
            "mask": mask_key,
        }
        self.has_depth = depth_key in spaces
        self.has_text = instruction_key in spaces and mask_key in spaces
        proprio_dim = gym.spaces.flatdim(spaces[proprio_key]) if proprio_key in spaces else 0
        self.encoder = VLPMEncoder(
            model,
            features_dim,
            bottleneck=bottleneck,
            towers=towers,
            use_depth=self.has_depth,
            depth_range=depth_range,
            proprio_dim=proprio_dim,
            seed=seed,
        )
        if pretrained is not None:
            self._load_pretrained(pretrained)
        if adapters_path is not None:
            from shieldgym.vlpm.adapters import load_adapters

            load_adapters(self.encoder, adapters_path)

    def _load_pretrained(self, path: str) -> None:
        """Start from the adapters and heads of an InfoNCE checkpoint; heads it lacks stay as initialised."""
        state = torch.load(path, map_location="cpu", weights_only=False)["encoder"]
        unexpected = sorted(set(state) - set(self.encoder.state_dict()))
        hint = "was it pre-trained with depth while the observations have none, or with another features_dim or bottleneck?"
        if unexpected:
            raise ValueError(f"checkpoint {path!r} does not fit this extractor: unexpected {unexpected} ({hint})")
        try:
            self.encoder.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise ValueError(f"checkpoint {path!r} does not fit this extractor ({hint}): {exc}") from exc

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        """Embed a batch of (SB3-preprocessed) observations, ``(B, features_dim)``."""
        keys = self.keys
        text = (observations[keys["instruction"]].long(), observations[keys["mask"]].long()) if self.has_text else None
        depth = observations[keys["depth"]] if self.has_depth else None
        proprio = observations[keys["proprio"]] if self.encoder.proprio_dim > 0 else None
        return self.encoder(observations[keys["rgb"]], depth=depth, text=text, proprio=proprio)
