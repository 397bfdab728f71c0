"""Typed generation: messages in, values of the declared output types out.

A node whose only output is a string reads the reply as text. Any other output shape asks the
model for a JSON object, constrained by its JSON schema where the backend supports it, and is
parsed, validated and, once, repaired by showing the model its own error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentforge.errors import OutputError
from agentforge.llm.base import LLMRequest, LLMResponse, Message
from agentforge.runtime.context import RunContext
from agentforge.runtime.trace import LLMCall, NodeTrace
from agentforge.workflow.prompt import render, show_value
from agentforge.workflow.spec import Demo, Sampling
from agentforge.workflow.types import FieldType, coerce, object_schema

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


@dataclass(frozen=True)
class Params:
    """Sampling after node settings, workflow defaults and run overrides are merged."""

    model: str
    temperature: float
    top_p: float | None
    max_tokens: int | None
    seed: int | None


def resolve_params(node: Sampling | None, ctx: RunContext, *, temperature: float | None = None) -> Params:
    d = ctx.defaults
    node = node or Sampling()
    model = ctx.model_override or node.model or d.model or "local"
    temp = node.temperature if node.temperature is not None else temperature
    if temp is None:
        temp = d.temperature if d.temperature is not None else 0.0
    return Params(
        model=model,
        temperature=temp,
        top_p=node.top_p if node.top_p is not None else d.top_p,
        max_tokens=node.max_tokens if node.max_tokens is not None else d.max_tokens,
        seed=node.seed if node.seed is not None else d.seed,
    )


def is_text_mode(outputs: dict[str, FieldType]) -> bool:
    return len(outputs) == 1 and next(iter(outputs.values())).base == "str"


def format_instructions(outputs: dict[str, FieldType]) -> str:
    if is_text_mode(outputs):
        return ""
    keys = ", ".join(f'"{k}" ({_type_words(t)})' for k, t in outputs.items())
    return f"Reply with only a JSON object with the keys {keys}."


def _type_words(ftype: FieldType) -> str:
    return {"str": "string", "int": "integer", "float": "number", "bool": "true or false",
            "list": "list", "dict": "object", "any": "any value"}.get(ftype.base, "JSON value")


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


async def call(
    ctx: RunContext,
    record: NodeTrace,
    params: Params,
    messages: Sequence[Message],
    *,
    schema: dict[str, Any] | None = None,
    n: int = 1,
    seed: int | None = None,
) -> LLMResponse:
    request = LLMRequest(
        model=params.model,
        messages=tuple(messages),
        temperature=params.temperature,
        top_p=params.top_p,
        max_tokens=params.max_tokens,
        n=n,
        seed=seed if seed is not None else params.seed,
        response_schema=schema,
    )
    response = await ctx.gateway.acomplete(request)
    record.llm_calls.append(LLMCall.of(request, response))
    return response


async def generate(
    ctx: RunContext,
    record: NodeTrace,
    params: Params,
    messages: list[Message],
    outputs: dict[str, FieldType],
    *,
    n: int = 1,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    """Call the model and return ``n`` parsed samples; a sample that fails to parse is repaired once."""
    schema = schema_for(outputs)
    response = await call(ctx, record, params, messages, schema=schema, n=n, seed=seed)
    samples: list[dict[str, Any]] = []
    for text in response.texts:
        try:
            samples.append(parse_outputs(text, outputs))
        except OutputError as exc:
            samples.append(await _repair(ctx, record, params, messages, text, exc, outputs, schema))
    return samples


async def _repair(
    ctx: RunContext,
    record: NodeTrace,
    params: Params,
    messages: list[Message],
    text: str,
    error: OutputError,
    outputs: dict[str, FieldType],
    schema: dict[str, Any] | None,
) -> dict[str, Any]:
    record.notes.append(f"repairing unparsable reply: {error}")
    retry = [
        *messages,
        Message(role="assistant", content=text),
        Message(role="user", content=f"That reply could not be used: {error}. {format_instructions(outputs)}"),
    ]
    response = await call(ctx, record, params, retry, schema=schema)
    try:
        return parse_outputs(response.text, outputs)
    except OutputError as exc:
        raise OutputError(f"{exc} (after one repair attempt)", model=params.model, node=record.node) from None
