"""The ``tool`` kind: call one tool with arguments rendered from state."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field

from agentforge.workflow.nodes.base import CheckContext, Component, NodeBase, NodeRecord, NodeRuntime, register
from agentforge.workflow.prompt import render, template_variables
from agentforge.workflow.types import coerce


def render_arg(value: Any, values: dict[str, Any]) -> Any:
    """``"{x}"`` alone passes x's value through with its type; other strings are templates."""
    if not isinstance(value, str):
        return value
    names = template_variables(value)
    if len(names) == 1 and value.strip() == "{" + names[0] + "}":
        return values[names[0]]
    return render(value, values)


@register
class ToolNode(NodeBase):
    """Call one tool with arguments rendered from state."""

    kind: Literal["tool"] = "tool"  # type: ignore[assignment]
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)

    shape = ("[[", "]]")
    color = "#d1e7dd"

    def check(self, ctx: CheckContext) -> None:
        ctx.check_tool(self.tool, node=self.id, path=("tool",))
        inputs = set(self.input_names())
        for key, value in self.args.items():
            if isinstance(value, str):
                ctx.check_template(value, node=self.id, path=("args", key), field=f"args.{key}", inputs=inputs)
        if len(self.outputs) > 1:
            ctx.add(f"a tool node has one output (the tool's result), not {len(self.outputs)}", node=self.id,
                    path=("outputs",), field="outputs", code="tool_outputs",
                    hint="keep one output; to split the result into several values, add a code node after it")

    def components(self) -> tuple[Component, ...]:
        return (self.component("tool", self.tool, "tools"),
                *(self.component(f"args.{key}", value, "text") for key, value in self.args.items()))

    async def execute(self, values: dict[str, Any], rt: NodeRuntime, record: NodeRecord) -> dict[str, Any]:
        from agentforge.tools.base import ToolContext

        tool = rt.tool(self.tool)
        args = {key: render_arg(value, values) for key, value in self.args.items()}
        started = time.perf_counter()
        result = await tool.acall(args, ToolContext(workspace=rt.workspace))
        rt.record_tool_call(record, tool=self.tool, args=args, result=result,
                            latency_s=time.perf_counter() - started)
        outputs = self.output_types()
        if not outputs:
            return {}
        name, ftype = next(iter(outputs.items()))
        return {name: coerce(result, ftype)}
