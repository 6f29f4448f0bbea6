"""Parameter accounting: how many parameters train, out of how many, and what they weigh.

This is the one place shieldgym counts parameters; the adapters, the SB3 extractor and the
algorithms all report their counts through :func:`parameter_report`.

Example:
    >>> import torch
    >>> net = torch.nn.Linear(4, 2)
    >>> net.bias.requires_grad_(False)  # doctest: +ELLIPSIS
    Parameter containing:...
    >>> report = parameter_report(net)
    >>> (report.trainable, report.total)
    (8, 10)
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["ParameterReport", "parameter_report"]


def _human_count(n: int) -> str:
    for unit, scale in (("B", 1_000_000_000), ("M", 1_000_000), ("k", 1_000)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _human_bytes(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


class ParameterReport(NamedTuple):
    """Counts of a module's parameters.

    Attributes:
        trainable: number of parameter elements with ``requires_grad=True``.
        total: number of parameter elements in the module.
        fraction: ``trainable / total`` (0.0 for a module without parameters).
        trainable_bytes: storage of the trainable parameters, in bytes.
        total_bytes: storage of all parameters, in bytes.
    """

    trainable: int
    total: int
    fraction: float
    trainable_bytes: int
    total_bytes: int

    def __str__(self) -> str:
        return (
            f"trainable {_human_count(self.trainable)} / {_human_count(self.total)} parameters "
            f"({100.0 * self.fraction:.3f}%), {_human_bytes(self.trainable_bytes)} / {_human_bytes(self.total_bytes)}"
        )


def parameter_report(model: torch.nn.Module) -> ParameterReport:
    """Count the trainable and total parameters of ``model``.

    Parameters shared between sub-modules (tied weights) are counted once.

    Args:
        model: any ``torch.nn.Module``.

    Returns:
        A :class:`ParameterReport`.

    Raises:
        TypeError: if ``model`` is not a ``torch.nn.Module``.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"parameter_report expects a torch.nn.Module, got {type(model).__name__}")
    trainable = total = trainable_bytes = total_bytes = 0
    for param in model.parameters():  # .parameters() already deduplicates shared tensors
        n = param.numel()
        size = n * param.element_size()
        total += n
        total_bytes += size
        if param.requires_grad:
            trainable += n
            trainable_bytes += size
    fraction = trainable / total if total else 0.0
    return ParameterReport(trainable, total, fraction, trainable_bytes, total_bytes)
