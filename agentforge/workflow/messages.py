"""Messages and replies for typed generation: prompts rendered to chat turns, replies parsed to typed values.

A node whose only output is a string reads the reply as text. Any other output shape asks the model
for a JSON object (constrained by its JSON schema where the backend supports it) and is parsed here.
Pure functions: the runtime's generation makes the calls.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agentforge.errors import OutputError
from agentforge.workflow.nodes.base import Demo
from agentforge.workflow.prompt import render, show_value
from agentforge.workflow.types import FieldType, coerce, object_schema

if TYPE_CHECKING:
    from agentforge.llm.base import Message

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def is_text_mode(outputs: dict[str, FieldType]) -> bool:
    return len(outputs) == 1 and next(iter(outputs.values())).base == "str"


def format_instructions(outputs: dict[str, FieldType]) -> str:
    if is_text_mode(outputs):
        return ""
    keys = ", ".join(f'"{k}" ({type_words(t)})' for k, t in outputs.items())
    return f"Reply with only a JSON object with the keys {keys}."


_BASE_WORDS = {"str": "string", "int": "integer", "float": "number", "bool": "true or false", "list": "list",
               "dict": "object", "any": "any value"}
_SCHEMA_WORDS = {"string": "string", "integer": "integer", "number": "number", "boolean": "true or false",
                 "array": "list", "object": "object"}


def type_words(ftype: FieldType) -> str:
    """How a reply's key is described to the model; an enum lists its members, so the prompt names them."""
    if ftype.base != "object":
        return _BASE_WORDS[ftype.base]
    schema = ftype.schema
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    kind = schema.get("type")
    return _SCHEMA_WORDS.get(kind, "JSON value") if isinstance(kind, str) else "JSON value"


def show_outputs(values: dict[str, Any], outputs: dict[str, FieldType]) -> str:
    if is_text_mode(outputs):
        return show_value(values[next(iter(outputs))])
    return json.dumps({k: values[k] for k in outputs}, ensure_ascii=False)


def build_messages(
    instruction: str,
    prompt: str,
    values: dict[str, Any],
    outputs: dict[str, FieldType],
    demos: Sequence[Demo] = (),
) -> list[Message]:
    from agentforge.llm.base import Message  # kept out of validation's imports

    system = "\n\n".join(part for part in (instruction.strip(), format_instructions(outputs)) if part)
    messages = [Message(role="system", content=system)] if system else []
    for demo in demos:
        messages.append(Message(role="user", content=render(prompt, demo.inputs)))
        messages.append(Message(role="assistant", content=show_outputs(demo.outputs, outputs)))
    messages.append(Message(role="user", content=render(prompt, values)))
    return messages


def extract_json(text: str) -> Any:
    """The JSON value in a reply: the whole text, a fenced block, or the outermost {...}."""
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    raise OutputError(f"the reply is not JSON: {text[:200]!r}")


def parse_outputs(text: str, outputs: dict[str, FieldType]) -> dict[str, Any]:
    if is_text_mode(outputs):
        return {next(iter(outputs)): text.strip()}
    try:
        data = extract_json(text)
    except OutputError:
        if len(outputs) == 1:  # a single typed value may come back bare, e.g. "42"
            name, ftype = next(iter(outputs.items()))
            try:
                return {name: coerce(text.strip(), ftype)}
            except ValueError:
                pass
        raise
    return values_from(data, outputs)


def values_from(data: Any, outputs: dict[str, FieldType]) -> dict[str, Any]:
    """Typed output values from parsed JSON: an object with one key per output (or a bare value)."""
    if not isinstance(data, dict):
        if len(outputs) == 1:
            data = {next(iter(outputs)): data}
        else:
            raise OutputError(f"expected a JSON object with keys {list(outputs)}, got {type(data).__name__}")
    if len(outputs) == 1 and next(iter(outputs)) not in data and len(data) == 1:
        data = {next(iter(outputs)): next(iter(data.values()))}
    values: dict[str, Any] = {}
    for name, ftype in outputs.items():
        if name not in data:
            raise OutputError(f"the reply lacks the key '{name}' (got {sorted(data)})")
        try:
            values[name] = coerce(data[name], ftype)
        except ValueError as exc:
            raise OutputError(f"key '{name}': {exc}") from None
    return values


def schema_for(outputs: dict[str, FieldType]) -> dict[str, Any] | None:
    return None if is_text_mode(outputs) else object_schema(outputs)
