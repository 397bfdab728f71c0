"""The ``agent`` node: one LLM call (n samples, majority wins) or a ReAct loop over allowed tools."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

from agentforge.errors import OutputError, ToolError
from agentforge.llm.base import Message
from agentforge.runtime import generation as gen
from agentforge.runtime.context import RunContext
from agentforge.runtime.trace import NodeTrace, ToolCall
from agentforge.workflow.prompt import default_prompt, render
from agentforge.workflow.spec import AgentNode
from agentforge.workflow.types import FieldType


def majority(samples: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The first sample whose ``key`` value is the most common (strings compared case-folded)."""

    def norm(value: Any) -> str:
        return value.strip().casefold() if isinstance(value, str) else json.dumps(value, sort_keys=True)

    counts = Counter(norm(s[key]) for s in samples)
    best = max(counts.values())
    for sample in samples:
        if counts[norm(sample[key])] == best:
            return sample
    return samples[0]


async def execute(node: AgentNode, values: dict[str, Any], ctx: RunContext, record: NodeTrace) -> dict[str, Any]:
    outputs = node.output_types()
    prompt = node.prompt if node.prompt is not None else default_prompt(node.input_names())
    params = gen.resolve_params(node, ctx)
    if node.tools:
        return await _react(node, values, ctx, record, outputs, prompt, params)
    messages = gen.build_messages(node.instruction, prompt, values, outputs, node.demos)
    samples = await gen.generate(ctx, record, params, messages, outputs, n=node.n)
    if len(samples) == 1:
        return samples[0]
    return majority(samples, next(iter(outputs)))


THOUGHT_CHARS = 120  # small models ramble; a bounded thought keeps each step inside max_tokens
_THOUGHT = {"type": "string", "maxLength": THOUGHT_CHARS}


def _step_schema(tools: list[tuple[str, dict[str, Any]]], outputs: dict[str, FieldType],
                 finish_only: bool = False) -> dict[str, Any]:
    finish = {"type": "object", "properties": {name: t.schema for name, t in outputs.items()},
              "required": list(outputs)}
    branches = [{"type": "object",
                 "properties": {"thought": _THOUGHT, "action": {"const": "finish"}, "args": finish},
                 "required": ["thought", "action", "args"]}]
    if not finish_only:
        for name, schema in tools:
            branches.insert(0, {"type": "object",
                                "properties": {"thought": _THOUGHT, "action": {"const": name},
                                               "args": schema},
                                "required": ["thought", "action", "args"]})
    return branches[0] if len(branches) == 1 else {"anyOf": branches}


def _react_instruction(node: AgentNode, tools: list[Any], outputs: dict[str, FieldType]) -> str:
    lines = [node.instruction.strip(), "", "You can use these tools:"]
    for tool in tools:
        lines.append(f"- {tool.name}: {tool.description} Arguments (JSON schema): "
                     f"{json.dumps(tool.parameters_schema())}")
    finish_args = ", ".join(f'"{k}": <{gen._type_words(t)}>' for k, t in outputs.items())
    lines += [
        "",
        "Work step by step. Each reply must be one JSON object: "
        '{"thought": "<your reasoning>", "action": "<tool name>", "args": {<tool arguments>}}. '
        "You will then see the tool's result as an Observation.",
        f'When you know the answer reply {{"thought": "...", "action": "finish", "args": {{{finish_args}}}}}.',
    ]
    return "\n".join(lines).strip()


async def _react(node: AgentNode, values: dict[str, Any], ctx: RunContext, record: NodeTrace,
                 outputs: dict[str, FieldType], prompt: str, params: gen.Params) -> dict[str, Any]:
    from agentforge.tools.base import ToolContext

    tools = [ctx.tools.get(name) for name in node.tools]
    by_name = {t.name: t for t in tools}
    schema = _step_schema([(t.name, t.parameters_schema()) for t in tools], outputs)
    messages: list[Message] = [
        Message(role="system", content=_react_instruction(node, tools, outputs)),
        Message(role="user", content=render(prompt, values)),
    ]
    tool_ctx = ToolContext(workspace=ctx.workspace)
    for step in range(node.max_steps):
        final = step == node.max_steps - 1
        if final:
            messages.append(Message(role="user", content="This is your last step: reply with action \"finish\"."))
        response = await gen.call(ctx, record, params, messages,
                                  schema=_step_schema([], outputs, finish_only=True) if final else schema)
        messages.append(Message(role="assistant", content=response.text))
        try:
            reply = gen.extract_json(response.text)
            if not isinstance(reply, dict) or "action" not in reply:
                raise OutputError('the reply needs "thought", "action" and "args"')
            action, args = str(reply["action"]), reply.get("args") or {}
            if action == "finish":
                return gen.values_from(args, outputs)
            if action not in by_name:
                raise OutputError(f"unknown action '{action}'; use one of {[*by_name, 'finish']}")
            if not isinstance(args, dict):
                raise OutputError("args must be a JSON object")
        except OutputError as exc:
            if final:
                raise OutputError(f"ReAct loop ended without a usable answer: {exc}", node=node.id) from None
            messages.append(Message(role="user", content=f"Observation: invalid reply: {exc}"))
            continue
        started = time.perf_counter()
        try:
            result, failed = await by_name[action].acall(args, tool_ctx), False
        except ToolError as exc:  # the agent sees the error and may try again
            result, failed = f"error: {exc}", True
        record.tool_calls.append(ToolCall(tool=action, args=args, result=result, error=failed,
                                          latency_s=time.perf_counter() - started))
        messages.append(Message(role="user", content=f"Observation: {result}"))
    raise OutputError("ReAct loop ended without an answer", node=node.id)  # unreachable: last step finishes
