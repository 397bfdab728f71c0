"""Prompt templates: ``{field}`` variables bound from workflow state; ``{{`` and ``}}`` escape braces."""

from __future__ import annotations

import json
from string import Formatter
from typing import Any

_FORMATTER = Formatter()


def template_variables(template: str) -> list[str]:
    """The variable names a template uses, in order of first use. Raises ``ValueError`` if malformed."""
    names: list[str] = []
    for _, field_name, _, _ in _FORMATTER.parse(template):
        if field_name is None:
            continue
        root = field_name.split(".", 1)[0].split("[", 1)[0]
        if not root.isidentifier():
            raise ValueError(f"'{{{field_name}}}' is not a valid variable; write {{{{ and }}}} for literal braces")
        if root not in names:
            names.append(root)
    return names


def show_value(value: Any) -> str:
    """How a state value reads inside a prompt: text as is, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def render(template: str, values: dict[str, Any]) -> str:
    out: list[str] = []
    for literal, field_name, _, _ in _FORMATTER.parse(template):
        out.append(literal)
        if field_name is not None:
            out.append(show_value(values[field_name]))
    return "".join(out)


def default_prompt(names: list[str] | tuple[str, ...]) -> str:
    """The template used when a node gives none: one labelled line per input."""
    return "\n".join(f"{name}: {{{name}}}" for name in names)
