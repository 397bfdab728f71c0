"""The spec as data: identity, lineage, immutability, types, schema, and the light public API."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

import agentforge
from agentforge.workflow.edits import ReplaceNode
from agentforge.workflow.loader import load_spec, spec_from_text
from agentforge.workflow.spec import AgentNode, Change
from agentforge.workflow.types import coerce, is_assignable, parse_type
from tests.conftest import WORKFLOWS

SMALL = """
version: 1
name: small
inputs: {q: str}
outputs: {a: str}
nodes:
  - {id: ask, kind: agent, instruction: Answer., prompt: "{q}", inputs: [q], outputs: [a]}
"""


def test_content_hash_ignores_formatting_and_changes_with_content() -> None:
    a = spec_from_text(SMALL)
    reformatted = spec_from_text(SMALL.replace("{q: str}", "\n  q: str\n").replace("version: 1\n", ""))
    assert a.hash == reformatted.hash
    assert spec_from_text(SMALL.replace("Answer.", "Answer briefly.")).hash != a.hash


def test_apply_records_parent_and_change_without_touching_the_parent() -> None:
    parent = spec_from_text(SMALL)
    node = parent.nodes[0]
    assert isinstance(node, AgentNode)
    new_node = node.model_copy(update={"instruction": "Answer in one word."})
    child = parent.apply([ReplaceNode(node=new_node)], Change(summary="shorter answers", author="test"))
    assert child.parent == parent.hash and child.change is not None
    assert child.change.summary == "shorter answers"
    assert child.change.nodes() == ("ask",)
    assert child.hash != parent.hash
    assert parent.nodes[0].instruction == "Answer."  # type: ignore[union-attr]
    # Lineage is not identity: the same content with another parent has the same hash.
    assert child.model_copy(update={"parent": None}).hash == child.hash


def test_a_changed_copy_gets_its_own_hash() -> None:
    spec = spec_from_text(SMALL)
    assert spec.hash == spec.hash
    assert spec.model_copy(update={"name": "other"}).hash != spec.hash


def test_spec_is_immutable() -> None:
    spec = spec_from_text(SMALL)
    with pytest.raises(ValidationError):
        spec.name = "other"  # type: ignore[misc]


def test_components_name_the_rewritable_prompt_parts() -> None:
    texts = {c.name: c.value for c in spec_from_text(SMALL).components() if c.kind == "text"}
    assert texts == {"ask.instruction": "Answer.", "ask.prompt": "{q}"}


@pytest.mark.parametrize(("expr", "value", "expected"), [
    ("int", "42", 42), ("int", "42.0", 42), ("float", "3.5", 3.5), ("float", 2, 2.0), ("bool", "yes", True),
    ("str", 7, "7"), ("list[int]", "[1, 2]", [1, 2]), ("dict", '{"a": 1}', {"a": 1}),
    ({"type": "string", "enum": ["pro", "con"]}, "pro", "pro"), ("int", "x = 42.", 42),
])
def test_values_are_coerced_to_declared_types(expr: object, value: object, expected: object) -> None:
    assert coerce(value, parse_type(expr)) == expected


@pytest.mark.parametrize(("expr", "value"), [
    ("int", "4.5"), ("int", True), ("bool", "maybe"), ("list[int]", '["a"]'),
    ({"type": "string", "enum": ["pro", "con"]}, "neither"), ("dict", "[1]"),
])
def test_values_of_the_wrong_type_are_refused(expr: object, value: object) -> None:
    with pytest.raises(ValueError):
        coerce(value, parse_type(expr))


def test_unknown_type_name_suggests_the_closest() -> None:
    with pytest.raises(ValueError, match="did you mean 'float'"):
        parse_type("flaot")


def test_assignability_rules() -> None:
    t = parse_type
    assert is_assignable(t("int"), t("float"))
    assert not is_assignable(t("float"), t("int"))
    assert is_assignable(t("list[str]"), t("list"))
    assert is_assignable(t({"type": "string", "enum": ["a"]}), t("str"))
    assert not is_assignable(t("str"), t("int"))


def test_json_schema_is_ref_free_and_accepts_every_shipped_workflow() -> None:
    import jsonschema
    import yaml

    from agentforge.workflow.schema import workflow_json_schema

    schema = workflow_json_schema()
    assert "$ref" not in json.dumps(schema) and "$defs" not in schema
    for path in sorted(WORKFLOWS.glob("*.yaml")):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x", "nodes": [{"id": "a", "kind": "agent", "bogus": 1}]}, schema)


def test_every_shipped_workflow_loads() -> None:
    names = {load_spec(p).name for p in WORKFLOWS.glob("*.yaml")}
    assert {"cot-qa", "math-code", "react-calculator", "debate", "router-specialist"} <= names


def test_public_api_is_pinned() -> None:
    assert agentforge.__all__ == sorted([
        "AgentforgeError", "Change", "Gateway", "InputError", "LLMError", "LLMRequest", "LLMResponse", "Message",
        "NodeError", "RunResult", "ScriptedModel", "Settings", "SpecError", "Tool", "ToolRegistry", "Trace",
        "Workflow", "WorkflowSpec", "find_problems", "get_settings", "load_spec", "register_script",
        "spec_from_text", "tool", "use_settings",
        "EnvError", "Environment", "EvalReport", "Observation", "Session", "StepResult", "Task", "TaskResult",
        "aevaluate", "evaluate", "load_env",
        "evolve", "aevolve", "EvolveResult", "EvolveConfig", "BudgetConfig", "Limits", "Verdict", "Gate", "Experience",
        "MemoryStore", "open_memory",
        "Candidate", "Edit", "diff", "RunStore", "Score", "EvalSink", "TraceSink", "TaskError",
    ])
    for name in agentforge.__all__:
        assert getattr(agentforge, name) is not None


def test_import_agentforge_loads_no_heavy_library() -> None:
    code = ("import sys, agentforge; heavy = [m for m in ('litellm', 'langgraph', 'llama_cpp', 'networkx', "
            "'textgrad', 'dspy', 'chromadb') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
