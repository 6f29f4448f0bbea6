"""Lazy re-exports for package ``__init__`` modules.

A package lists its public names and the submodule defining each; a name's submodule is imported on
first access (PEP 562), so importing the package stays cheap (no torch, transformers or simulator).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module-level ``__getattr__`` and ``__dir__`` for ``package``.

    Args:
        package: the package's ``__name__``.
        names: public name -> dotted module that defines it.

    Returns:
        ``(__getattr__, __dir__)`` to assign in the package's ``__init__``. A resolved name is cached
        in the package namespace, so the lookup runs once per name.

    >>> __getattr__, __dir__ = lazy_exports(__name__, {"sqrt": "math"})  # doctest: +SKIP
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
