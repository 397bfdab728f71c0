"""The ``router`` kind: pick the next node by condition or by an LLM's choice, with a loop bound."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from agentforge.errors import NodeError, OutputError
from agentforge.expr import ExpressionError, evaluate, names_used
from agentforge.workflow import messages as msg
from agentforge.workflow.nodes.base import (
    Branch,
    CheckContext,
    Component,
    FrozenModel,
    NodeBase,
    NodeRecord,
    NodeRuntime,
    Sampling,
    register,
)
from agentforge.workflow.prompt import default_prompt
from agentforge.workflow.types import parse_type


class Route(FrozenModel):
    to: str
    when: str | None = Field(default=None, description="A Python-like boolean expression over state.")
    label: str | None = Field(default=None, description="The name an LLM router chooses between.")
    description: str | None = None


class RouterChoice(Sampling):
    """Let an LLM pick the route label."""

    instruction: str = "Choose the best route for the input."
    prompt: str | None = None


def choice_components(node: NodeBase, choice: RouterChoice, prefix: str) -> tuple[Component, ...]:
    return (node.component(f"{prefix}.instruction", choice.instruction, "text"),
            node.component(f"{prefix}.prompt", choice.prompt, "text"),
            *node.sampling_components(choice, f"{prefix}."))


@register
class RouterNode(NodeBase):
    """Branch on state expressions, or on an LLM's choice of label."""

    kind: Literal["router"] = "router"  # type: ignore[assignment]
    routes: tuple[Route, ...] = Field(min_length=1)
    default: str | None = None
    llm: RouterChoice | None = None
    max_iterations: int | None = Field(default=None, ge=1, description="Bound on visits, for loops.")
    on_limit: str | None = Field(default=None, description="Where to go once max_iterations is reached.")

    shape = ("{", "}")
    color = "#fff3cd"

    # -- checks --------------------------------------------------------------------------------
    def check(self, ctx: CheckContext) -> None:
        inputs = set(self.input_names())
        if self.llm is not None:
            ctx.check_model(self.llm.model, node=self.id, path=("llm", "model"), field="llm.model")
            if self.llm.prompt is not None:
                ctx.check_template(self.llm.prompt, node=self.id, path=("llm", "prompt"), field="llm.prompt",
                                   inputs=inputs)
            if any(r.label is None for r in self.routes):
                ctx.add("an LLM router's routes each need a 'label' to choose from", node=self.id,
                        field="routes", code="route_label")
        else:
            self._check_conditions(ctx, inputs)
        if self.outputs:
            ctx.add("a router writes no outputs; it only picks the next node", node=self.id,
                    path=("outputs",), field="outputs", code="router_outputs",
                    hint="remove 'outputs' (the route taken is in the trace); to keep a value, "
                         "let a node on the chosen route write it")
        if self.on_limit is not None and self.max_iterations is None:
            ctx.add("'on_limit' is never used without 'max_iterations'", node=self.id, path=("on_limit",),
                    field="on_limit", hint="add 'max_iterations: N', or remove 'on_limit'", code="unused_field")

    def _check_conditions(self, ctx: CheckContext, inputs: set[str]) -> None:
        for j, route in enumerate(self.routes):
            if route.when is None:
                ctx.add(f"route #{j + 1} has no 'when' condition", node=self.id, path=("routes", j),
                        field="when", hint="add 'when:' or give the router an 'llm:' to choose by label",
                        code="route_condition")
                continue
            try:
                used = names_used(route.when)
            except ExpressionError as exc:
                ctx.add(str(exc), node=self.id, path=("routes", j, "when"), field="when", code="bad_expression")
                continue
            for name in sorted(used - inputs):
                ctx.add(f"condition uses '{name}', which is not one of the router's inputs", node=self.id,
                        path=("routes", j, "when"), field="when", hint=f"add '{name}' to inputs",
                        code="unbound_variable")
        if self.default is None:
            ctx.add("a router needs a 'default' route for when no condition holds", node=self.id,
                    field="default", code="router_default", hint="add 'default: <node id or END>'")

    def components(self) -> tuple[Component, ...]:
        labels = tuple(self.component(f"routes.{j}.label", r.label, "label") for j, r in enumerate(self.routes))
        return (*labels, *(choice_components(self, self.llm, "llm") if self.llm else ()))

    # -- graph ---------------------------------------------------------------------------------
    def branches(self) -> tuple[Branch, ...]:
        out = [Branch(r.to, r.when or r.label or "", ("routes", j, "to"), f"routes[{j}].to")
               for j, r in enumerate(self.routes)]
        if self.default is not None:
            out.append(Branch(self.default, "default", ("default",), "default"))
        if self.on_limit is not None:
            out.append(Branch(self.on_limit, f"after {self.max_iterations}", ("on_limit",), "on_limit"))
        return tuple(out)

    def loop_bound(self) -> int | None:
        return self.max_iterations

    # -- running -------------------------------------------------------------------------------
    async def route(self, values: dict[str, Any], rt: NodeRuntime, record: NodeRecord, visits: int) -> str:
        if self.max_iterations is not None and visits > self.max_iterations:
            target = self.on_limit or self.default or self.routes[-1].to
            record.notes.append(f"max_iterations={self.max_iterations} reached; going to {target}")
            return target
        if self.llm is None:
            for route in self.routes:
                if route.when is not None and self._holds(route.when, values):
                    record.notes.append(f"'{route.when}' holds")
                    return route.to
            assert self.default is not None  # validation guarantees it
            return self.default
        labels = [r.label or r.to for r in self.routes]
        options = "\n".join(f"- {r.label}: {r.description or r.to}" for r in self.routes)
        instruction = f"{self.llm.instruction.strip()}\n\nRoutes:\n{options}"
        outputs = {"route": parse_type({"type": "string", "enum": labels})}
        prompt = self.llm.prompt if self.llm.prompt is not None else default_prompt(self.input_names())
        messages = msg.build_messages(instruction, prompt, values, outputs)
        try:
            (choice,) = await rt.generate(record, rt.params(self.llm), messages, outputs)
        except OutputError as exc:
            if self.default is None:
                raise
            record.notes.append(f"no valid route chosen ({exc}); taking default")
            return self.default
        record.notes.append(f"LLM chose '{choice['route']}'")
        return self.routes[labels.index(choice["route"])].to

    def _holds(self, when: str, values: dict[str, Any]) -> bool:
        """Evaluate a condition; a failure names the router, the condition and the types it saw."""
        try:
            return bool(evaluate(when, values))
        except ExpressionError as exc:
            seen = ", ".join(f"{name}: {type(values[name]).__name__} {values[name]!r:.60}"
                             for name in sorted(names_used(when)) if name in values)
            raise NodeError(f"router '{self.id}' condition {when!r} failed: {exc} (values: {seen or 'none'})",
                            node=self.id, expression=when, cause=ExpressionError.__name__) from exc
