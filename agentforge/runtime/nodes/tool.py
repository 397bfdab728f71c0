"""The ``tool`` node: call one tool with arguments rendered from state."""

from __future__ import annotations

from typing import Any

from agentforge.runtime.context import RunContext
from agentforge.runtime.trace import NodeTrace, ToolCall
from agentforge.workflow.prompt import render, template_variables
from agentforge.workflow.spec import ToolNode
from agentforge.workflow.types import coerce


def render_arg(value: Any, values: dict[str, Any]) -> Any:
    """``"{x}"`` alone passes x's value through with its type; other strings are templates."""
    if not isinstance(value, str):
        return value
    names = template_variables(value)
    if len(names) == 1 and value.strip() == "{" + names[0] + "}":
        return values[names[0]]
    return render(value, values)


async def execute(node: ToolNode, values: dict[str, Any], ctx: RunContext, record: NodeTrace) -> dict[str, Any]:
    import time

    from agentforge.tools.base import ToolContext

    tool = ctx.tools.get(node.tool)
    args = {key: render_arg(value, values) for key, value in node.args.items()}
    started = time.perf_counter()
    result = await tool.acall(args, ToolContext(workspace=ctx.workspace))
    record.tool_calls.append(ToolCall(tool=node.tool, args=args, result=result,
                                      latency_s=time.perf_counter() - started))
    outputs = node.output_types()
    if not outputs:
        return {}
    name, ftype = next(iter(outputs.items()))
    return {name: coerce(result, ftype)}
