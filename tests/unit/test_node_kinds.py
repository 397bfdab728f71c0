"""A node kind is one module: a kind defined only in this file validates, compiles, runs, renders and edits."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any, Literal

import pytest

from agentforge.errors import SpecError
from agentforge.runtime.workflow import Workflow
from agentforge.workflow import spec as spec_module
from agentforge.workflow.edits import SetComponent
from agentforge.workflow.loader import spec_from_text
from agentforge.workflow.nodes import CheckContext, Component, NodeBase, NodeRecord, NodeRuntime, node_kinds
from agentforge.workflow.nodes.base import register, unregister
from agentforge.workflow.render import to_mermaid
from agentforge.workflow.validate import find_problems


class UpperNode(NodeBase):
    """Uppercase one input, optionally adding a suffix."""

    kind: Literal["upper"] = "upper"  # type: ignore[assignment]
    suffix: str = ""

    shape = ("([", "])")

    def check(self, ctx: CheckContext) -> None:
        if len(self.input_names()) != 1:
            ctx.add("an upper node takes exactly one input", node=self.id, field="inputs", code="upper_inputs")

    def components(self) -> tuple[Component, ...]:
        return (self.component("suffix", self.suffix, "text"),)

    async def execute(self, values: dict[str, Any], rt: NodeRuntime, record: NodeRecord) -> dict[str, Any]:
        (value,) = values.values()
        record.notes.append("uppercased")
        return {next(iter(self.outputs)): str(value).upper() + self.suffix}


UPPER = textwrap.dedent("""
    version: 1
    name: shout
    inputs: {text: str}
    outputs: {loud: str}
    nodes:
      - {id: up, kind: upper, inputs: [text], outputs: [loud], suffix: "!"}
""")


@pytest.fixture
def upper_kind() -> Iterator[type[UpperNode]]:
    register(UpperNode)
    yield UpperNode
    unregister("upper")


def test_a_kind_defined_in_a_test_validates_compiles_and_runs(upper_kind: type[UpperNode]) -> None:
    assert "upper" in node_kinds() and "upper" in spec_module.NODE_KINDS
    spec = spec_from_text(UPPER)
    assert find_problems(spec) == []
    result = Workflow(spec).run({"text": "hello"}, save=False)
    assert result.outputs == {"loud": "HELLO!"}
    (record,) = result.trace.nodes
    assert record.kind == "upper" and record.notes == ["uppercased"]
    assert 'up(["up<br/><i>upper</i>"])' in to_mermaid(spec)


def test_the_kind_checks_itself_and_exposes_its_components(upper_kind: type[UpperNode]) -> None:
    bad = spec_from_text(UPPER.replace("inputs: [text], outputs", "inputs: [text, text2], outputs")
                         .replace("inputs: {text: str}", "inputs: {text: str, text2: str}"))
    assert [p.code for p in find_problems(bad)] == ["upper_inputs"]
    spec = spec_from_text(UPPER)
    assert [(c.name, c.value) for c in spec.components()] == [("up.suffix", "!")]
    edited = spec.apply([SetComponent(name="up.suffix", value="?")])
    assert Workflow(edited).run({"text": "hi"}, save=False).outputs == {"loud": "HI?"}


def test_an_unregistered_kind_is_refused_with_the_known_kinds(upper_kind: type[UpperNode]) -> None:
    unregister("upper")
    with pytest.raises(SpecError, match="unknown node kind 'upper'"):
        spec_from_text(UPPER)
    register(UpperNode)  # the fixture unregisters it again


def test_a_kind_name_cannot_be_taken_twice(upper_kind: type[UpperNode]) -> None:
    class Other(NodeBase):
        kind: Literal["upper"] = "upper"  # type: ignore[assignment]

    with pytest.raises(ValueError, match="already registered"):
        register(Other)
