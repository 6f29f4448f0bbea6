"""InfoNCE: the loss against a hand computation, pre-training raises retrieval accuracy, checkpoints resume exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shieldgym.pretrain.infonce import (
    ContrastiveData,
    infonce_loss,
    pretrain,
    retrieval_accuracy,
)
from shieldgym.vlpm.backbone import build_tiny_clip
from shieldgym.vlpm.encoder import VLPMEncoder


def _hand_infonce(z: np.ndarray, w: np.ndarray, tau: float) -> float:
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    w = w / np.linalg.norm(w, axis=1, keepdims=True)
    total = 0.0
    for i in range(len(z)):
        scores = [np.exp(z[i] @ w[j] / tau) for j in range(len(w))]
        total += -np.log(scores[i] / sum(scores))
    return total / len(z)


def test_loss_equals_hand_computation() -> None:
    z = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 2.0, 1.0]])
    w = np.array([[0.9, 0.1, 0.0], [0.0, 1.0, 1.0], [0.2, 1.0, 0.3]])
    out = infonce_loss(torch.tensor(z), torch.tensor(w), temperature=0.5)
    assert float(out.loss) == pytest.approx(_hand_infonce(z, w, 0.5), rel=1e-12)
    assert float(out.loss) == pytest.approx(0.8565777, abs=1e-6)  # the hand value, recorded
    assert float(out.accuracy) == pytest.approx(2 / 3)  # row 1 prefers w_2 over its own w_1
    identical = torch.eye(4, dtype=torch.float64)
    perfect = infonce_loss(identical, identical, temperature=0.01)
    assert 0.0 <= float(perfect.loss) < 1e-40 and float(perfect.accuracy) == 1.0


def test_loss_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"shape \(N >= 2, k\)"):
        infonce_loss(torch.ones(3, 2), torch.ones(3, 4))
    with pytest.raises(ValueError, match=r"shape \(N >= 2, k\)"):
        infonce_loss(torch.ones(1, 2), torch.ones(1, 2))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        infonce_loss(torch.ones(2, 2), torch.ones(2, 2), temperature=0.0)


def synthetic(n: int, rng: np.random.Generator) -> ContrastiveData:
    """A bright square (and a near patch in depth) at the position given by the 2-d state; the action
    moves it towards the centre, with noise."""
    state = rng.uniform(0, 1, (n, 2)).astype(np.float32)
    action = (0.5 - state + rng.normal(0, 0.05, (n, 2))).astype(np.float32)
    rgb = np.zeros((n, 32, 32, 3), np.uint8)
    depth = np.full((n, 32, 32), 2.0, np.float32)
    for i, (x, y) in enumerate(state):
        r, c = int(x * 24), int(y * 24)
        rgb[i, r : r + 8, c : c + 8] = 255
        depth[i, r : r + 8, c : c + 8] = 0.5
    return ContrastiveData(rgb, state, action, depth)


def test_pretraining_raises_held_out_retrieval_above_chance() -> None:
    rng = np.random.default_rng(0)
    train, held_out = synthetic(512, rng).split(0.125, rng)
    assert len(held_out) == 64
    encoder = VLPMEncoder(build_tiny_clip(), 16, bottleneck=8, seed=0)
    adapters_before = {k: v.clone() for k, v in encoder.adapters.state_dict().items()}
    chance = 1 / len(held_out)
    result = pretrain(encoder, train, steps=150, batch_size=32, lr=3e-3, psi_hidden=(64,), seed=0, progress=False)
    before = retrieval_accuracy(VLPMEncoder(build_tiny_clip(), 16, bottleneck=8, seed=0), result.psi, held_out)
    after = retrieval_accuracy(encoder, result.psi, held_out)
    assert before <= 3 * chance
    assert after >= 10 * chance  # chance is 1 of 64
    assert np.mean(result.losses[-20:]) < np.mean(result.losses[:20]) - 1.0
    assert not any(p.requires_grad for p in encoder.backbone.parameters())
    assert any(not torch.equal(v, encoder.adapters.state_dict()[k]) for k, v in adapters_before.items())


def test_checkpoint_resume_is_exact(tmp_path) -> None:
    data = synthetic(64, np.random.default_rng(1))

    def run(steps: int, checkpoint, encoder=None):
        encoder = encoder or VLPMEncoder(build_tiny_clip(), 8, bottleneck=4, seed=0)
        result = pretrain(
            encoder,
            data,
            steps=steps,
            batch_size=16,
            psi_hidden=(16,),
            checkpoint=checkpoint,
            checkpoint_every=3,
            progress=False,
        )
        return encoder, result

    straight_encoder, straight = run(10, None)
    run(6, tmp_path / "ck.pt")  # "interrupted" after 6 steps
    resumed_encoder, resumed = run(10, tmp_path / "ck.pt")
    assert resumed.resumed_from == 6 and resumed.step == 10
    assert resumed.losses == straight.losses
    for (name, a), (_, b) in zip(straight_encoder.state_dict().items(), resumed_encoder.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    state = torch.load(tmp_path / "ck.pt", weights_only=False)
    assert state["step"] == 10 and set(state) >= {"encoder", "psi", "optimizer", "rng", "losses"}


def test_contrastive_data_checks_sizes() -> None:
    with pytest.raises(ValueError, match="same number of samples"):
        ContrastiveData(np.zeros((3, 4, 4, 3), np.uint8), np.zeros((2, 1)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"rgb must have shape \(N, H, W, 3\)"):
        ContrastiveData(np.zeros((3, 4, 4)), np.zeros((3, 1)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="batch_size must be in"):
        pretrain(VLPMEncoder(build_tiny_clip(), 8, seed=0), synthetic(4, np.random.default_rng(0)), batch_size=8)
