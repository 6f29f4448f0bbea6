"""Frozen copies of an actor that share its frozen parameters, and their trainable state.

A deterministic training episode (``CQLLag(deterministic_every=k)``) is played by a copy of the actor taken
when the episode starts, so the episode measures one fixed policy while the live actor keeps training. The
copy shares every parameter with ``requires_grad=False`` (a frozen backbone is never duplicated); only the
trainable parameters and the buffers are copied.
"""

from __future__ import annotations

import copy

import numpy as np
import torch as th


def frozen_copy(module: th.nn.Module) -> th.nn.Module:
    """A copy of ``module`` in eval mode whose frozen parameters are the original's tensors (not copies)."""
    memo = {id(p): p for p in module.parameters() if not p.requires_grad}
    clone = copy.deepcopy(module, memo)
    clone.eval()
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


def trainable_state(module: th.nn.Module, reference: th.nn.Module) -> dict[str, np.ndarray]:
    """``module``'s state, as NumPy arrays, without the entries that are frozen parameters of ``reference``.

    ``reference`` is the live module ``module`` was copied from (the copy's own parameters are all frozen).
    """
    frozen = {name for name, p in reference.named_parameters() if not p.requires_grad}
    return {name: t.detach().cpu().numpy().copy() for name, t in module.state_dict().items() if name not in frozen}


def load_trainable_state(module: th.nn.Module, state: dict[str, np.ndarray]) -> None:
    """Load a :func:`trainable_state` into ``module``; every entry it lacks must be a frozen parameter."""
    tensors = {name: th.as_tensor(value) for name, value in state.items()}
    missing, unexpected = module.load_state_dict(tensors, strict=False)
    frozen = {name for name, p in module.named_parameters() if not p.requires_grad}
    if unexpected or set(missing) - frozen:
        raise ValueError(
            f"the stored actor state does not fit this actor: missing {sorted(set(missing) - frozen)}, "
            f"unexpected {sorted(unexpected)}."
        )
