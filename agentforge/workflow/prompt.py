"""Prompt templates: ``{field}`` variables bound from workflow state; ``{{`` and ``}}`` escape braces.

A variable is a plain name. Attribute access, indexing, format specs and conversions (``{x.y}``,
``{x[0]}``, ``{x:>5}``, ``{x!r}``) are refused: state values are JSON data, shown as text or JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from string import Formatter
from typing import Any

_FORMATTER = Formatter()


class TemplateError(ValueError):
    """A malformed or unsupported ``{...}`` in a template; ``hint`` says how to write it instead."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def _parts(template: str) -> Iterator[tuple[str, str | None]]:
    """(literal text, variable name or None) pairs; raise ``TemplateError`` on anything but plain names."""
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:  # an unmatched single brace
        raise TemplateError(f"malformed template: {exc}", hint="write {{ and }} for literal braces") from None
    for literal, field_name, spec, conversion in parsed:
        if field_name is None:
            yield literal, None
            continue
        whole = "{" + field_name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        root = field_name.split(".", 1)[0].split("[", 1)[0]
        if not root.isidentifier():
            raise TemplateError(f"'{whole}' is not a valid variable", hint="write {{ and }} for literal braces")
        if root != field_name:
            raise TemplateError(
                f"'{whole}' uses attribute or index access; a template variable is a plain name",
                hint=f"insert the whole value with '{{{root}}}', or add a node that writes the part you "
                     "need as its own output")
        if spec or conversion:
            raise TemplateError(
                f"'{whole}' has a format spec or conversion; a template variable is a plain name",
                hint=f"write '{{{root}}}' (strings go in as is, other values as JSON); format the value "
                     "in the node that produces it")
        yield literal, field_name


def template_variables(template: str) -> list[str]:
    """The variable names a template uses, in order of first use. Raises ``TemplateError`` if malformed."""
    names: list[str] = []
    for _, name in _parts(template):
        if name is not None and name not in names:
            names.append(name)
    return names


def show_value(value: Any) -> str:
    """How a state value reads inside a prompt: text as is, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def render(template: str, values: dict[str, Any]) -> str:
    out: list[str] = []
    for literal, name in _parts(template):
        out.append(literal)
        if name is not None:
            out.append(show_value(values[name]))
    return "".join(out)


def default_prompt(names: list[str] | tuple[str, ...]) -> str:
    """The template used when a node gives none: one labelled line per input."""
    return "\n".join(f"{name}: {{{name}}}" for name in names)
