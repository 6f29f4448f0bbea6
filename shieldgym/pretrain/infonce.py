"""InfoNCE pre-training of the adapters: align ``z = h_L(I, D)`` with ``w = psi(s, a)``.

For a batch of N transitions with images ``I_i``, depth ``D_i``, states ``s_i`` and actions ``a_i``::

    z_i = normalise(h_L(I_i, D_i))        VLPMEncoder.encode_visual, L2-normalised
    w_i = normalise(psi(s_i, a_i))        StateActionEncoder, L2-normalised
    L   = -1/N sum_i log( exp(z_i . w_i / tau) / sum_j exp(z_i . w_j / tau) )

Both embeddings are L2-normalised, so ``z_i . w_j`` is a cosine similarity in [-1, 1] and the
temperature ``tau`` alone sets the sharpness. The loss is the cross-entropy of picking the
matching state-action pair among the batch for each image (the image-to-state direction, as
written above). Only the encoder's visual path (adapters, depth stem, visual head) and ``psi``
train; the backbone stays frozen.

:func:`pretrain` runs it with a tqdm progress bar, writes checkpoints (encoder adapters and heads,
``psi``, optimizer, step, RNG state) atomically every ``checkpoint_every`` steps, and resumes from
the checkpoint when one exists.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

__all__ = [
    "ContrastiveData",
    "InfoNCELoss",
    "PretrainResult",
    "StateActionEncoder",
    "infonce_loss",
    "pretrain",
    "retrieval_accuracy",
]


class InfoNCELoss(NamedTuple):
    """Result of :func:`infonce_loss`.

    Attributes:
        loss: scalar InfoNCE loss.
        accuracy: fraction of rows whose highest logit is the matching pair.
        logits: ``(N, N)`` similarity logits ``z_i . w_j / tau``.
    """

    loss: torch.Tensor
    accuracy: torch.Tensor
    logits: torch.Tensor


def infonce_loss(z: torch.Tensor, w: torch.Tensor, temperature: float = 0.1) -> InfoNCELoss:
    """InfoNCE between L2-normalised ``z`` ``(N, k)`` and ``w`` ``(N, k)`` (row i of each is a positive pair).

    Raises:
        ValueError: shapes differ, ``N < 2``, or ``temperature <= 0``.
    """
    if z.shape != w.shape or z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"z and w must both have shape (N >= 2, k), got {tuple(z.shape)} and {tuple(w.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = nn.functional.normalize(z, dim=-1)
    w = nn.functional.normalize(w, dim=-1)
    logits = z @ w.T / temperature  # (N, N): logits[i, j] = z_i . w_j / tau
    targets = torch.arange(z.shape[0], device=z.device)
    loss = nn.functional.cross_entropy(logits, targets)  # -1/N sum_i log softmax(logits[i])[i]
    accuracy = (logits.argmax(dim=1) == targets).float().mean()
    return InfoNCELoss(loss, accuracy.detach(), logits)


class StateActionEncoder(nn.Module):
    """``psi(s, a)``: an MLP from the concatenated state and action to R^k.

    Args:
        state_dim: state size.
        action_dim: action size.
        out_dim: embedding size ``k`` (the encoder's ``out_dim``).
        hidden: hidden layer widths.
    """

    def __init__(self, state_dim: int, action_dim: int, out_dim: int, hidden: tuple[int, ...] = (256, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = state_dim + action_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.GELU()]
            width = h
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)
        self.state_dim, self.action_dim = state_dim, action_dim

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``(B, state_dim), (B, action_dim) -> (B, out_dim)``."""
        return self.net(torch.cat([state.float(), action.float()], dim=-1))


@dataclass
class ContrastiveData:
    """Transitions for InfoNCE: images, optional depth, states and actions (first axis: samples).

    Attributes:
        rgb: ``uint8`` ``(N, H, W, 3)``.
        state: ``float32`` ``(N, S)``.
        action: ``float32`` ``(N, A)``.
        depth: ``float32`` ``(N, H, W)`` or None.
    """

    rgb: np.ndarray
    state: np.ndarray
    action: np.ndarray
    depth: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.rgb)
        if self.rgb.ndim != 4 or self.rgb.shape[-1] != 3:
            raise ValueError(f"rgb must have shape (N, H, W, 3), got {self.rgb.shape}")
        self.state = np.asarray(self.state, np.float32).reshape(len(self.state), -1)
        self.action = np.asarray(self.action, np.float32).reshape(len(self.action), -1)
        sizes = {"rgb": n, "state": len(self.state), "action": len(self.action)}
        if self.depth is not None:
            sizes["depth"] = len(self.depth)
        if len(set(sizes.values())) != 1:
            raise ValueError(f"all arrays need the same number of samples, got {sizes}")

    def __len__(self) -> int:
        return len(self.rgb)

    def subset(self, index: np.ndarray) -> ContrastiveData:
        """The samples at ``index``."""
        depth = None if self.depth is None else self.depth[index]
        return ContrastiveData(self.rgb[index], self.state[index], self.action[index], depth)

    def split(self, held_out: float, rng: np.random.Generator) -> tuple[ContrastiveData, ContrastiveData]:
        """A random ``(train, held_out)`` split."""
        order = rng.permutation(len(self))
        cut = len(self) - max(1, round(held_out * len(self)))
        return self.subset(order[:cut]), self.subset(order[cut:])

    @classmethod
    def from_minari(cls, dataset: Any) -> ContrastiveData:
        """Read a Minari dataset written by :mod:`shieldgym.pretrain.collect` (Dict observations with
        ``"rgb"``, ``"state"`` and optionally ``"depth"``); the observation before each action is used.

        Args:
            dataset: a ``minari.MinariDataset`` or a dataset id.
        """
        if isinstance(dataset, str):
            from shieldgym._optional import require

            dataset = require("minari", "reading pre-training datasets").load_dataset(dataset)
        rgb, depth, state, action = [], [], [], []
        for episode in dataset.iterate_episodes():
            obs = episode.observations
            if not isinstance(obs, dict) or "rgb" not in obs or "state" not in obs:
                raise ValueError("the dataset's observations must be a Dict with 'rgb' and 'state' (collect with shieldgym)")
            steps = len(episode.actions)
            rgb.append(obs["rgb"][:steps])
            state.append(obs["state"][:steps])
            action.append(episode.actions)
            if "depth" in obs:
                depth.append(obs["depth"][:steps])
        return cls(
            np.concatenate(rgb),
            np.concatenate(state),
            np.concatenate(action),
            np.concatenate(depth) if depth else None,
        )


@dataclass
class PretrainResult:
    """What :func:`pretrain` returns.

    Attributes:
        psi: the trained state-action encoder.
        losses: loss of every step run (including steps before a resume).
        step: steps done in total.
        resumed_from: the step the run resumed from (0 for a fresh run).
    """

    psi: StateActionEncoder
    losses: list[float] = field(default_factory=list)
    step: int = 0
    resumed_from: int = 0


def _visual_parameters(encoder: Any) -> list[nn.Parameter]:
    params = [p for p in encoder.adapters.parameters()] + list(encoder.visual_head.parameters())
    if encoder.depth_stem is not None:
        params += list(encoder.depth_stem.parameters())
    return params


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)  # atomic: an interrupted save never corrupts the previous checkpoint
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _embed(
    encoder: Any, psi: StateActionEncoder, data: ContrastiveData, index: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    depth = None if data.depth is None or not encoder.use_depth else data.depth[index]
    z = encoder.encode_visual(data.rgb[index], depth)
    device = z.device
    w = psi(torch.as_tensor(data.state[index], device=device), torch.as_tensor(data.action[index], device=device))
    return z, w


def retrieval_accuracy(encoder: Any, psi: StateActionEncoder, data: ContrastiveData, batch_size: int = 256) -> float:
    """Fraction of samples whose image embedding is closest (cosine) to its own state-action embedding
    among all samples of ``data`` (chance: ``1 / len(data)``)."""
    with torch.no_grad():
        zs, ws = [], []
        for start in range(0, len(data), batch_size):
            z, w = _embed(encoder, psi, data, np.arange(start, min(start + batch_size, len(data))))
            zs.append(nn.functional.normalize(z, dim=-1))
            ws.append(nn.functional.normalize(w, dim=-1))
        sim = torch.cat(zs) @ torch.cat(ws).T
    return float((sim.argmax(dim=1) == torch.arange(len(data), device=sim.device)).float().mean())


def pretrain(
    encoder: Any,
    data: ContrastiveData,
    *,
    psi: StateActionEncoder | None = None,
    steps: int = 1000,
    batch_size: int = 64,
    lr: float = 1e-3,
    temperature: float = 0.1,
    psi_hidden: tuple[int, ...] = (256, 256),
    seed: int = 0,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 100,
    resume: bool = True,
    progress: bool = True,
) -> PretrainResult:
    """Train the encoder's visual path and ``psi`` with InfoNCE.

    Args:
        encoder: a :class:`~shieldgym.vlpm.encoder.VLPMEncoder` (its adapters and visual heads train).
        data: transitions (:class:`ContrastiveData`, e.g. ``ContrastiveData.from_minari(...)``).
        psi: state-action encoder (default: a new :class:`StateActionEncoder`, seeded by ``seed``).
        steps: total optimisation steps (a resumed run continues up to this number).
        batch_size: N, the number of pairs per batch (the negatives are the other N - 1).
        lr: Adam learning rate.
        temperature: ``tau``.
        psi_hidden: hidden widths of a new ``psi``.
        seed: seed of batch sampling and of a new ``psi``.
        checkpoint: checkpoint file; written every ``checkpoint_every`` steps and at the end.
        checkpoint_every: steps between checkpoints.
        resume: continue from ``checkpoint`` when it exists.
        progress: show a tqdm progress bar.

    Returns:
        A :class:`PretrainResult`.

    Raises:
        ValueError: ``batch_size`` < 2 or larger than the dataset.
    """
    from tqdm.auto import tqdm

    if not 2 <= batch_size <= len(data):
        raise ValueError(f"batch_size must be in [2, len(data)={len(data)}], got {batch_size}")
    device = encoder.visual_head.weight.device
    if psi is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            psi = StateActionEncoder(data.state.shape[1], data.action.shape[1], encoder.out_dim, psi_hidden)
    psi.to(device)
    optimizer = torch.optim.Adam(_visual_parameters(encoder) + list(psi.parameters()), lr=lr)
    rng = np.random.default_rng(seed)
    result = PretrainResult(psi=psi)
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and resume and path.exists():
        state = torch.load(path, map_location=device, weights_only=False)
        encoder.load_state_dict(state["encoder"])
        psi.load_state_dict(state["psi"])
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        result.step = result.resumed_from = int(state["step"])
        result.losses = list(state["losses"])

    def save() -> None:
        if path is not None:
            payload = {"encoder": encoder.state_dict(), "psi": psi.state_dict(), "optimizer": optimizer.state_dict()}
            payload |= {"step": result.step, "rng": rng.bit_generator.state, "losses": result.losses}
            payload |= {"temperature": temperature, "psi_dims": (psi.state_dim, psi.action_dim, encoder.out_dim)}
            _save_checkpoint(path, payload)

    encoder.train()
    bar = tqdm(total=steps, initial=result.step, disable=not progress, desc="InfoNCE", unit="step")
    try:
        while result.step < steps:
            index = rng.choice(len(data), size=batch_size, replace=False)  # each step's batch depends only on rng
            z, w = _embed(encoder, psi, data, index)
            out = infonce_loss(z, w, temperature)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
            result.step += 1
            result.losses.append(float(out.loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{result.losses[-1]:.3f}", acc=f"{float(out.accuracy):.2f}")
            if result.step % checkpoint_every == 0:
                save()
    finally:
        bar.close()
        encoder.eval()
    save()
    return result
