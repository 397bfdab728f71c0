"""The ``subworkflow`` kind: run another workflow file as one step; inputs and outputs bind by name."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from agentforge.workflow.nodes.base import CheckContext, NodeBase, NodeRecord, NodeRuntime, register, suggest
from agentforge.workflow.types import ANY, FieldType, is_assignable, parse_type


@register
class SubworkflowNode(NodeBase):
    """Run another workflow file as one node; inputs and outputs bind by name."""

    kind: Literal["subworkflow"] = "subworkflow"  # type: ignore[assignment]
    workflow: str = Field(description="Path to the child YAML, relative to this file.")

    shape = ("[[", "]]")
    color = "#dee2e6"

    def output_types(self) -> dict[str, FieldType]:
        """Declared types; an output listed by name alone takes the child workflow's type for it.

        The child's outputs arrive already coerced to the child's types, so ``any`` here means "as
        the child gives it"; validation reads the child file to type these outputs statically.
        """
        if isinstance(self.outputs, dict):
            return {k: parse_type(v) for k, v in self.outputs.items()}
        return dict.fromkeys(self.outputs, ANY)

    def child_workflows(self) -> tuple[str, ...]:
        return (self.workflow,)

    def check(self, ctx: CheckContext) -> None:
        ctx.child(self.id, self.workflow)  # loads and checks the child file; binding is checked with types

    def static_input_type(self, ctx: CheckContext, name: str) -> FieldType | None:
        child = ctx.child(self.id, self.workflow)
        return child.input_types().get(name) if child is not None else None

    def static_output_types(self, ctx: CheckContext, declared: dict[str, FieldType]) -> dict[str, FieldType]:
        child = ctx.child(self.id, self.workflow)
        if child is None:
            return declared
        child_outputs = child.output_types()
        typed = declared if isinstance(self.outputs, dict) else {}
        out: dict[str, FieldType] = {}
        for name in self.outputs:
            if name not in child_outputs:
                ctx.add(f"subworkflow has no output '{name}'", node=self.id, path=("outputs",),
                        field="outputs", hint=suggest(name, child_outputs), code="unknown_field")
                continue
            got = child_outputs[name]
            if name not in typed:  # listed by name: typed by the child
                out[name] = got
                continue
            if not is_assignable(got, typed[name]):
                ctx.add(f"output '{name}' is declared {typed[name]} but the subworkflow gives {got}",
                        node=self.id, path=("outputs", name), field=f"outputs.{name}", code="type_mismatch",
                        hint=f"declare it as {got}, or list it by name to take the child's type")
            out[name] = typed[name]
        for name in self.input_names():
            if name not in child.inputs:
                ctx.add(f"subworkflow has no input '{name}'", node=self.id, path=("inputs",),
                        field="inputs", hint=suggest(name, child.inputs), code="unknown_field")
        given = set(self.input_names())
        for name, child_input in child.input_fields().items():
            if child_input.required and child_input.default is None and name not in given:
                ctx.add(f"the subworkflow needs input '{name}', which the node does not pass", node=self.id,
                        path=("inputs",), field="inputs", code="missing_input",
                        hint=f"add '{name}' to the node's inputs, or give it a default in '{self.workflow}'")
        return out

    async def execute(self, values: dict[str, Any], rt: NodeRuntime, record: NodeRecord) -> dict[str, Any]:
        result = await rt.run_child(self.workflow, values, record)
        return {name: result[name] for name in self.outputs}
