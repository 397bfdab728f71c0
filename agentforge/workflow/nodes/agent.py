"""The ``agent`` kind: one LLM call (n samples, majority wins) or a ReAct loop over allowed tools."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from agentforge.errors import OutputError, ToolError
from agentforge.workflow import messages as msg
from agentforge.workflow.nodes.base import (
    CheckContext,
    Component,
    Demo,
    NodeBase,
    NodeRecord,
    NodeRuntime,
    Params,
    Sampling,
    register,
)
from agentforge.workflow.prompt import default_prompt, render
from agentforge.workflow.types import FieldType

if TYPE_CHECKING:
    from agentforge.llm.base import Message


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


def check_demos(ctx: CheckContext, node: NodeBase, demos: tuple[Demo, ...], path: tuple[str, ...]) -> None:
    inputs = set(node.input_names())
    outputs = set(ctx.output_types(node.id))
    for j, demo in enumerate(demos):
        missing = (inputs - set(demo.inputs)) | (outputs - set(demo.outputs))
        if missing:
            ctx.add(f"demo #{j + 1} lacks {sorted(missing)}", node=node.id, path=(*path, j), field="demos",
                    code="bad_demo")


@register
class AgentNode(NodeBase, Sampling):
    """One LLM call, or a ReAct loop when ``tools`` are allowed."""

    kind: Literal["agent"] = "agent"  # type: ignore[assignment]
    instruction: str = ""
    prompt: str | None = Field(default=None, description="Template with {field} variables.")
    demos: tuple[Demo, ...] = ()
    n: int = Field(default=1, ge=1, le=16, description="Samples to draw; the most common answer wins.")
    tools: tuple[str, ...] = ()
    max_steps: int = Field(default=6, ge=1, le=50)

    shape = ("[", "]")
    color = "#cfe2ff"

    def check(self, ctx: CheckContext) -> None:
        ctx.check_model(self.model, node=self.id, path=("model",), field="model")
        for i, name in enumerate(self.tools):
            ctx.check_tool(name, node=self.id, path=("tools", i))
        if self.prompt is not None:
            ctx.check_template(self.prompt, node=self.id, path=("prompt",), field="prompt",
                               inputs=set(self.input_names()))
        check_demos(ctx, self, self.demos, ("demos",))
        if not self.outputs:
            ctx.add("the node declares no outputs", node=self.id, field="outputs",
                    hint="add e.g. 'outputs: {answer: str}'", code="no_outputs")
        if self.tools:
            if self.n > 1:
                ctx.add("'n' is not used by an agent with tools (a ReAct loop is one sample per step)",
                        node=self.id, path=("n",), field="n", hint="remove 'n', or 'tools'", code="unused_field")
            if self.demos:
                ctx.add("'demos' are not used by an agent with tools", node=self.id, path=("demos",),
                        field="demos", hint="remove 'demos', or 'tools'", code="unused_field")

    def components(self) -> tuple[Component, ...]:
        return (
            self.component("instruction", self.instruction, "text"),
            self.component("prompt", self.prompt, "text"),
            self.component("demos", [d.model_dump(mode="json") for d in self.demos], "demos"),
            *self.sampling_components(self),
            self.component("n", self.n, "sampling"),
            self.component("tools", list(self.tools), "tools"),
        )

    async def execute(self, values: dict[str, Any], rt: NodeRuntime, record: NodeRecord) -> dict[str, Any]:
        outputs = self.output_types()
        prompt = self.prompt if self.prompt is not None else default_prompt(self.input_names())
        params = rt.params(self)
        if self.tools:
            return await self._react(values, rt, record, outputs, prompt, params)
        messages = msg.build_messages(self.instruction, prompt, values, outputs, self.demos)
        samples = await rt.generate(record, params, messages, outputs, n=self.n)
        if len(samples) == 1:
            return samples[0]
        return majority(samples, next(iter(outputs)))

    async def _react(self, values: dict[str, Any], rt: NodeRuntime, record: NodeRecord,
                     outputs: dict[str, FieldType], prompt: str, params: Params) -> dict[str, Any]:
        from agentforge.llm.base import Message
        from agentforge.tools.base import ToolContext

        tools = [rt.tool(name) for name in self.tools]
        by_name = {t.name: t for t in tools}
        schema = _step_schema([(t.name, t.parameters_schema()) for t in tools], outputs)
        messages: list[Message] = [
            Message(role="system", content=_react_instruction(self, tools, outputs)),
            Message(role="user", content=render(prompt, values)),
        ]
        tool_ctx = ToolContext(workspace=rt.workspace)
        for step in range(self.max_steps):
            final = step == self.max_steps - 1
            if final:
                messages.append(Message(role="user", content="This is your last step: reply with action \"finish\"."))
            response = await rt.complete(record, params, messages,
                                         schema=_step_schema([], outputs, finish_only=True) if final else schema)
            messages.append(Message(role="assistant", content=response.text))
            try:
                reply = msg.extract_json(response.text)
                if not isinstance(reply, dict) or "action" not in reply:
                    raise OutputError('the reply needs "thought", "action" and "args"')
                action, args = str(reply["action"]), reply.get("args") or {}
                if action == "finish":
                    return msg.values_from(args, outputs)
                if action not in by_name:
                    raise OutputError(f"unknown action '{action}'; use one of {[*by_name, 'finish']}")
                if not isinstance(args, dict):
                    raise OutputError("args must be a JSON object")
            except OutputError as exc:
                if final:
                    raise OutputError(f"ReAct loop ended without a usable answer: {exc}", node=self.id) from None
                messages.append(Message(role="user", content=f"Observation: invalid reply: {exc}"))
                continue
            started = time.perf_counter()
            try:
                result, failed = await by_name[action].acall(args, tool_ctx), False
            except ToolError as exc:  # the agent sees the error and may try again
                result, failed = f"error: {exc}", True
            rt.record_tool_call(record, tool=action, args=args, result=result, error=failed,
                                latency_s=time.perf_counter() - started)
            messages.append(Message(role="user", content=f"Observation: {result}"))
        raise OutputError("ReAct loop ended without an answer", node=self.id)  # unreachable: last step finishes


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
    finish_args = ", ".join(f'"{k}": <{msg.type_words(t)}>' for k, t in outputs.items())
    lines += [
        "",
        "Work step by step. Each reply must be one JSON object: "
        '{"thought": "<your reasoning>", "action": "<tool name>", "args": {<tool arguments>}}. '
        "You will then see the tool's result as an Observation.",
        f'When you know the answer reply {{"thought": "...", "action": "finish", "args": {{{finish_args}}}}}.',
    ]
    return "\n".join(lines).strip()
