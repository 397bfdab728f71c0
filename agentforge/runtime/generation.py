"""Typed generation: messages in, values of the declared output types out, every call traced.

The message building and reply parsing are pure and live in ``workflow/messages.py``; this module
makes the calls through the gateway and repairs an unparsable reply once by showing the model its error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agentforge.errors import OutputError
from agentforge.llm.base import LLMRequest, LLMResponse, Message
from agentforge.runtime.trace import LLMCall, NodeTrace
from agentforge.workflow.messages import (
    build_messages,
    extract_json,
    format_instructions,
    is_text_mode,
    parse_outputs,
    schema_for,
    show_outputs,
    type_words,
    values_from,
)
from agentforge.workflow.nodes.base import Params, Sampling
from agentforge.workflow.types import FieldType

if TYPE_CHECKING:
    from agentforge.runtime.context import RunContext

__all__ = [
    "Params", "build_messages", "call", "extract_json", "format_instructions", "generate", "is_text_mode",
    "parse_outputs", "resolve_params", "schema_for", "show_outputs", "type_words", "values_from",
]


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
