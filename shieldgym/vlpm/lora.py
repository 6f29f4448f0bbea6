"""LoRA on a frozen backbone through peft, as an alternative to bottleneck adapters.

LoRA adds ``B A x`` (rank ``r``, ``B`` zero-initialised) to chosen linear layers, so like the
bottleneck adapters it starts exactly at the backbone's behaviour. The LoRA layers are injected
in place (``peft.inject_adapter_in_model``): the model keeps its class and API.

Example:
    >>> from shieldgym.vlpm.backbone import build_tiny_clip
    >>> model = add_lora(build_tiny_clip(), r=2)
    >>> from shieldgym.vlpm.accounting import parameter_report
    >>> parameter_report(model).trainable
    512
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch import nn

from shieldgym._optional import require
from shieldgym.vlpm.backbone import model_kind

__all__ = ["add_lora"]

_TOWER_PREFIX = {"vision": "vision_model", "text": "text_model"}


def add_lora(
    model: nn.Module,
    r: int = 8,
    *,
    alpha: float | None = None,
    target_modules: Sequence[str] = ("q_proj", "v_proj"),
    towers: Sequence[str] = ("vision",),
    dropout: float = 0.0,
    adapter_name: str = "default",
) -> nn.Module:
    """Inject LoRA into the attention projections of the chosen towers (in place).

    Only the LoRA parameters are trainable afterwards; everything else stays frozen.

    Args:
        model: a CLIP or SigLIP backbone.
        r: LoRA rank.
        alpha: LoRA scaling numerator (default ``2 * r``).
        target_modules: names of the linear layers to adapt inside each block.
        towers: ``("vision",)`` or ``("vision", "text")``.
        dropout: LoRA dropout.
        adapter_name: peft adapter name.

    Returns:
        ``model`` (modified in place).

    Raises:
        ValueError: ``r < 1``, an unknown tower, or no module matches ``target_modules``.
    """
    if r < 1:
        raise ValueError(f"LoRA rank r must be >= 1, got {r}")
    bad = [t for t in towers if t not in _TOWER_PREFIX]
    if bad or not towers:
        raise ValueError(f"towers must be a non-empty subset of {tuple(_TOWER_PREFIX)}, got {tuple(towers)!r}")
    model_kind(model)
    peft = require("peft", "LoRA adapters")
    names = "|".join(target_modules)
    prefixes = "|".join(_TOWER_PREFIX[t] for t in towers)
    pattern = rf".*({prefixes})\.encoder\.layers\.\d+\..*({names})$"
    if not any(re.fullmatch(pattern, name) for name, _ in model.named_modules()):
        raise ValueError(f"no module of the {tuple(towers)} tower(s) matches target_modules={tuple(target_modules)!r}")
    config = peft.LoraConfig(
        r=r, lora_alpha=alpha if alpha is not None else 2 * r, lora_dropout=dropout, target_modules=pattern
    )
    model = peft.inject_adapter_in_model(config, model, adapter_name=adapter_name)
    for name, param in model.named_parameters():
        param.requires_grad_("lora_" in name)
    return model
