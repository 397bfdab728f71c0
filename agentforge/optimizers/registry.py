"""Optimizers by name, resolved lazily so that naming one does not import the others' heavy libraries."""

from __future__ import annotations

import importlib
from difflib import get_close_matches

from agentforge.errors import InputError
from agentforge.optimizers.base import Optimizer

OPTIMIZERS: dict[str, str] = {
    "reflect": "agentforge.optimizers.reflect:ReflectOptimizer",
    "textgrad": "agentforge.optimizers.textgrad:TextGradOptimizer",
    "mipro": "agentforge.optimizers.mipro:MiproOptimizer",
}


def optimizer_names() -> list[str]:
    return list(OPTIMIZERS)


def optimizer_class(name: str) -> type[Optimizer]:
    """The optimizer class registered as ``name``; an unknown name is an ``InputError`` with a suggestion."""
    target = OPTIMIZERS.get(name)
    if target is None:
        close = get_close_matches(name, list(OPTIMIZERS), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise InputError(f"unknown optimizer '{name}'{hint}; known: {', '.join(OPTIMIZERS)}")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
