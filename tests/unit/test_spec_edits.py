"""The spec edited as a value: typed edits, apply (validated, with before/after), diff as its inverse, JSON Patch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from agentforge.errors import SpecError
from agentforge.workflow.edits import (
    AddEdge,
    AddNode,
    Candidate,
    Change,
    Edit,
    RemoveEdge,
    RemoveNode,
    ReplaceNode,
    RewireEdge,
    SetComponent,
    SetField,
    SetSampling,
    SetTools,
    diff,
    edits_from_json_patch,
    json_patch,
)
from agentforge.workflow.loader import load_spec, spec_from_text
from agentforge.workflow.nodes.base import Edge
from agentforge.workflow.spec import WorkflowSpec
from tests.conftest import WORKFLOWS

CHAIN = """
version: 1
name: chain
inputs: {question: str}
outputs: {answer: str}
nodes:
  - {id: draft, kind: agent, instruction: Draft., prompt: "Q: {question}", inputs: [question], outputs: [notes]}
  - {id: final, kind: agent, instruction: Finalise., prompt: "N: {notes}", inputs: [notes], outputs: [answer],
     protected: true}
edges:
  - {from: draft, to: final}
"""
SPECS = {p.name: load_spec(p) for p in sorted(WORKFLOWS.glob("*.yaml"))}


def chain() -> WorkflowSpec:
    return spec_from_text(CHAIN)


# -- components ------------------------------------------------------------------------------
def test_components_name_every_text_and_setting_that_behaves_and_mark_protected_nodes() -> None:
    comps = {c.name: c for c in chain().components()}
    assert comps["draft.instruction"].value == "Draft." and comps["draft.instruction"].kind == "text"
    assert comps["draft.prompt"].value == "Q: {question}"
    assert comps["draft.demos"].kind == "demos" and comps["draft.tools"].kind == "tools"
    assert {"draft.temperature", "draft.n", "draft.top_p", "draft.max_tokens", "draft.model"} <= set(comps)
    assert comps["draft.temperature"].kind == "sampling"
    assert comps["final.instruction"].protected and not comps["draft.instruction"].protected


def test_router_and_ensemble_components_reach_the_llm_prompt_labels_members_and_judge() -> None:
    router = {c.name for c in SPECS["router_specialist.yaml"].components()}
    assert {"route.llm.instruction", "route.llm.prompt", "route.routes.0.label", "route.routes.1.label"} <= router
    debate = SPECS["debate.yaml"]
    names = {c.name for c in debate.components()}
    ensembles = [n.id for n in debate.nodes if n.kind == "ensemble"]
    for node_id in ensembles:
        assert {f"{node_id}.member.instruction", f"{node_id}.member.demos", f"{node_id}.n"} <= names


# -- apply -----------------------------------------------------------------------------------
def test_apply_returns_a_validated_child_with_parent_change_and_before_after() -> None:
    parent = chain()
    change = Change(author="reflect", rationale="shorter drafts")
    child = parent.apply([SetComponent(name="draft.instruction", value="Draft briefly."),
                          SetSampling(node="final", param="temperature", value=0.7)], change)
    assert child.parent == parent.hash and child.hash != parent.hash
    assert child.node("draft").instruction == "Draft briefly." and child.node("final").temperature == 0.7
    assert parent.node("draft").instruction == "Draft."  # the parent is untouched
    assert child.change is not None and child.change.author == "reflect"
    assert child.change.rationale == "shorter drafts"
    first, second = child.change.edits
    assert (first.before, first.after) == ("Draft.", "Draft briefly.")
    assert (second.before, second.after) == (None, 0.7)
    assert child.change.nodes() == ("draft", "final")


def test_a_bad_edit_raises_a_spec_error_naming_the_edit() -> None:
    with pytest.raises(SpecError) as info:
        chain().apply([SetSampling(node="draft", param="n", value=2),
                       SetComponent(name="draft.instrution", value="x")])
    (problem,) = info.value.problems
    assert problem.code == "bad_edit"
    assert "edit #1 (set_component draft.instrution)" in problem.message
    assert "did you mean 'draft.instruction'" in problem.message


def test_an_edit_that_breaks_the_graph_is_refused_and_blamed() -> None:
    with pytest.raises(SpecError) as info:
        chain().apply([SetComponent(name="final.prompt", value="N: {nots}")])
    assert any("edit #0 (set_component final.prompt)" in p.message and p.code == "unbound_variable"
               for p in info.value.problems)
    with pytest.raises(SpecError) as info:
        chain().apply([SetSampling(node="draft", param="temperature", value=5)])
    assert "edit #0 (set_sampling draft.temperature)" in str(info.value)
    with pytest.raises(SpecError, match="unreachable"):
        chain().apply([RemoveEdge(edge=Edge.model_validate({"from": "draft", "to": "final"}))])


def test_tool_names_are_checked_when_the_caller_gives_them() -> None:
    spec = chain().apply([SetTools(node="draft", tools=("calculator",))], tool_names=["calculator"])
    assert spec.node("draft").tools == ("calculator",)
    with pytest.raises(SpecError, match="unknown tool 'calculater'"):
        chain().apply([SetTools(node="draft", tools=("calculater",))], tool_names=["calculator"])


def test_node_and_edge_edits() -> None:
    extra = {"id": "check", "kind": "agent", "instruction": "Check.", "inputs": ["question"], "outputs": ["ok"]}
    child = chain().apply([AddNode(node=extra), AddEdge(edge=Edge.model_validate({"from": "final", "to": "check"}))])
    assert child.node_ids() == ["draft", "final", "check"]
    back = child.apply([RemoveEdge(edge=Edge.model_validate({"from": "final", "to": "check"})), RemoveNode(id="check")])
    assert back.hash == chain().hash
    replaced = chain().apply([ReplaceNode(node={**chain().node("draft").model_dump(), "description": "d"})])
    assert replaced.node("draft").description == "d"
    rewired = child.apply([RewireEdge(old=Edge.model_validate({"from": "final", "to": "check"}),
                                      new=Edge.model_validate({"from": "draft", "to": "check"}))])
    assert rewired.edges[-1].sources() == ("draft",)
    with pytest.raises(SpecError, match="already exists"):
        chain().apply([AddNode(node={**extra, "id": "draft"})])


def test_edits_are_data_that_round_trip_through_json() -> None:
    edits = [SetComponent(name="draft.instruction", value="x"),
             AddEdge(edge=Edge.model_validate({"from": "a", "to": "b"})),
             SetField(field="description", value="d"), SetTools(node="draft", tools=("calculator",))]
    adapter = TypeAdapter(list[Edit])
    assert adapter.validate_json(adapter.dump_json(edits, by_alias=True)) == edits


def test_model_copy_validates_instead_of_skipping_it() -> None:
    spec = chain()
    with pytest.raises(ValueError):
        spec.model_copy(update={"name": "not a valid name!"})
    with pytest.raises(ValueError):
        spec.model_copy(update={"nodes": ()})
    assert spec.model_copy(update={"name": "other"}).name == "other"


def test_candidate_is_the_unit_passed_around() -> None:
    parent = chain()
    child = parent.apply([SetComponent(name="draft.instruction", value="Think.")], Change(author="mipro"))
    assert child.change is not None
    candidate = Candidate(spec=child, parent_hash=parent.hash, change=child.change)
    assert candidate.parent_hash == child.parent
    assert Candidate.of(child) == candidate
    with pytest.raises(ValueError, match="apply"):
        Candidate.of(parent)
    with pytest.raises(ValueError):
        candidate.parent_hash = "x"  # type: ignore[misc]


# -- JSON Patch ------------------------------------------------------------------------------
def test_the_change_stores_an_rfc6902_patch_that_round_trips() -> None:
    parent = chain()
    child = parent.apply([SetComponent(name="draft.instruction", value="Think."),
                          SetSampling(node="final", param="max_tokens", value=64)])
    assert child.change is not None
    patch = list(child.change.patch)
    assert patch == json_patch(parent, child)
    assert {"op": "replace", "path": "/nodes/0/instruction", "value": "Think."} in patch
    assert jsonpatch.apply_patch(parent.content(), patch) == child.content()
    stored = json.loads(json.dumps(patch))
    assert parent.apply(edits_from_json_patch(parent, stored)).hash == child.hash


def test_a_patch_that_does_not_apply_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="does not apply"):
        edits_from_json_patch(chain(), [{"op": "remove", "path": "/nodes/9"}])


# -- diff: the inverse of apply ---------------------------------------------------------------
def test_diff_of_a_spec_with_itself_is_empty_and_diff_is_minimal_for_component_edits() -> None:
    parent = chain()
    assert diff(parent, parent) == []
    child = parent.apply([SetComponent(name="draft.instruction", value="Think."),
                          SetSampling(node="draft", param="n", value=3)])
    assert diff(parent, child) == [SetComponent(name="draft.instruction", value="Think."),
                                   SetSampling(node="draft", param="n", value=3)]


def _agent_ids(spec: WorkflowSpec) -> list[str]:
    return [n.id for n in spec.nodes if n.kind == "agent"]


@st.composite
def edit_sequences(draw: st.DrawFn) -> tuple[WorkflowSpec, list[Any]]:
    spec = SPECS[draw(st.sampled_from(sorted(SPECS)))]
    edits: list[Any] = []
    added: list[str] = []
    words = st.text(alphabet="abcdefgh .", min_size=0, max_size=20)
    for i in range(draw(st.integers(min_value=1, max_value=6))):
        choice = draw(st.sampled_from(["text", "sampling", "add", "remove_added", "describe", "field",
                                       "edge_order", "tools"]))
        agents = _agent_ids(spec)
        if choice == "text":
            comp = draw(st.sampled_from([c for c in spec.components()
                                         if c.kind == "text" and c.name.endswith("instruction")]))
            edits.append(SetComponent(name=comp.name, value=draw(words)))
        elif choice == "sampling" and agents:
            node = draw(st.sampled_from(agents))
            param, values = draw(st.sampled_from([("temperature", st.sampled_from([0.0, 0.5, 1.3])),
                                                  ("max_tokens", st.integers(1, 900)),
                                                  ("seed", st.integers(0, 9)),
                                                  ("model", st.sampled_from(["local", "openai/gpt-4o"]))]))
            edits.append(SetSampling(node=node, param=param, value=draw(values)))
        elif choice == "add":
            node_id = f"extra_{i}"
            first_input = next(iter(spec.inputs))
            node = {"id": node_id, "kind": "agent", "instruction": draw(words), "inputs": [first_input],
                    "outputs": [f"{node_id}_out"]}
            edits.append(AddNode(node=node, index=draw(st.integers(1, len(spec.nodes)))))
            edits.append(AddEdge(edge=Edge.model_validate({"from": "START", "to": node_id}),
                                 index=draw(st.integers(0, len(spec.edges)))))
            added.append(node_id)
        elif choice == "remove_added" and added:
            node_id = added.pop()
            edits.append(RemoveEdge(edge=Edge.model_validate({"from": "START", "to": node_id})))
            edits.append(RemoveNode(id=node_id))
        elif choice == "describe":
            node = draw(st.sampled_from(list(spec.nodes)))
            edits.append(ReplaceNode(node={**node.model_dump(mode="json", by_alias=True, exclude_none=True),
                                           "description": draw(words)}))
        elif choice == "field":
            edits.append(SetField(field="description", value=draw(words)))
        elif choice == "edge_order" and len(spec.edges) > 1:
            edge = draw(st.sampled_from(list(spec.edges)))
            edits += [RemoveEdge(edge=edge), AddEdge(edge=edge, index=0)]
        elif choice == "tools" and agents:
            node = draw(st.sampled_from(agents))
            if spec.node(node).tools:
                edits.append(SetTools(node=node, tools=tuple(reversed(spec.node(node).tools))))
    return spec, edits


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edit_sequences())
def test_apply_of_diff_gives_back_the_target(case: tuple[WorkflowSpec, list[Any]]) -> None:
    a, edits = case
    try:
        b = a.apply(edits)
    except SpecError:
        assume(False)
        raise
    round_trip = a.apply(diff(a, b))
    assert round_trip.content() == b.content()
    assert round_trip.hash == b.hash
    assert diff(b, round_trip) == []


@pytest.mark.parametrize(("left", "right"), [("cot_qa.yaml", "math_code.yaml"), ("debate.yaml", "refine_loop.yaml"),
                                             ("router_specialist.yaml", "react_calculator.yaml")])
def test_diff_between_unrelated_workflows_still_round_trips(left: str, right: str, tmp_path: Path) -> None:
    a, b = SPECS[left], SPECS[right]
    assert a.apply(diff(a, b)).hash == b.hash


def test_diff_keeps_a_default_that_was_set_to_null() -> None:
    a = chain()
    b = spec_from_text(CHAIN.replace("outputs: {answer: str}", "outputs: {answer: str}\ndefaults: {max_tokens: null}"))
    assert b.defaults.max_tokens is None and a.defaults.max_tokens == 512
    assert a.apply(diff(a, b)).hash == b.hash
