"""The ``router`` node: pick the next node by condition or by an LLM's choice, with a loop bound."""

from __future__ import annotations

from typing import Any

from agentforge.errors import NodeError, OutputError
from agentforge.expr import ExpressionError, evaluate, names_used
from agentforge.runtime import generation as gen
from agentforge.runtime.context import RunContext
from agentforge.runtime.trace import NodeTrace
from agentforge.workflow.prompt import default_prompt
from agentforge.workflow.spec import RouterNode
from agentforge.workflow.types import parse_type

ROUTE_KEY = "__route__"
VISITS_KEY = "__visits__"


async def execute(node: RouterNode, values: dict[str, Any], ctx: RunContext, record: NodeTrace,
                  visits: int) -> str:
    """Return the id of the next node (or END). ``visits`` counts this visit too."""
    if node.max_iterations is not None and visits > node.max_iterations:
        target = node.on_limit or node.default or node.routes[-1].to
        record.notes.append(f"max_iterations={node.max_iterations} reached; going to {target}")
        return target
    if node.llm is None:
        for route in node.routes:
            if route.when is not None and _holds(node, route.when, values):
                record.notes.append(f"'{route.when}' holds")
                return route.to
        assert node.default is not None  # validation guarantees it
        return node.default
    labels = [r.label or r.to for r in node.routes]
    options = "\n".join(f"- {r.label}: {r.description or r.to}" for r in node.routes)
    instruction = f"{node.llm.instruction.strip()}\n\nRoutes:\n{options}"
    outputs = {"route": parse_type({"type": "string", "enum": labels})}
    prompt = node.llm.prompt if node.llm.prompt is not None else default_prompt(node.input_names())
    params = gen.resolve_params(node.llm, ctx)
    messages = gen.build_messages(instruction, prompt, values, outputs)
    try:
        (choice,) = await gen.generate(ctx, record, params, messages, outputs)
    except OutputError as exc:
        if node.default is None:
            raise
        record.notes.append(f"no valid route chosen ({exc}); taking default")
        return node.default
    record.notes.append(f"LLM chose '{choice['route']}'")
    return node.routes[labels.index(choice["route"])].to


def _holds(node: RouterNode, when: str, values: dict[str, Any]) -> bool:
    """Evaluate a condition; a failure names the router, the condition and the types it saw."""
    try:
        return bool(evaluate(when, values))
    except ExpressionError as exc:
        seen = ", ".join(f"{name}: {type(values[name]).__name__} {values[name]!r:.60}"
                         for name in sorted(names_used(when)) if name in values)
        raise NodeError(f"router '{node.id}' condition {when!r} failed: {exc} (values: {seen or 'none'})",
                        node=node.id, expression=when, cause=ExpressionError.__name__) from exc
