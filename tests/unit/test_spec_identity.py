"""Identity is behaviour: the hash changes whenever what the spec does can change."""

from __future__ import annotations

import textwrap
from pathlib import Path

from agentforge.config import ModelAlias, Settings
from agentforge.workflow.loader import load_spec, spec_from_text

CHILD = """
version: 1
name: child
inputs: {q: str}
outputs: {a: str}
nodes:
  - {id: ask, kind: agent, instruction: Answer., prompt: "{q}", inputs: [q], outputs: [a]}
"""
PARENT = """
version: 1
name: parent
inputs: {q: str}
outputs: {a: str}
nodes:
  - {id: sub, kind: subworkflow, workflow: child.yaml, inputs: [q], outputs: [a]}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_editing_a_subworkflow_file_changes_the_parent_hash(tmp_path: Path) -> None:
    child = write(tmp_path / "child.yaml", CHILD)
    parent = write(tmp_path / "parent.yaml", PARENT)
    before = load_spec(parent).hash
    assert load_spec(parent).hash == before  # stable while nothing changes
    assert load_spec(parent).child_hashes() == {"sub": load_spec(child).hash}
    write(child, CHILD.replace("Answer.", "Answer in one word."))
    assert load_spec(parent).hash != before


def test_a_nested_grandchild_edit_reaches_the_top(tmp_path: Path) -> None:
    write(tmp_path / "child.yaml", CHILD)
    write(tmp_path / "middle.yaml", PARENT.replace("name: parent", "name: middle"))
    top = write(tmp_path / "top.yaml", PARENT.replace("child.yaml", "middle.yaml"))
    before = load_spec(top).hash
    write(tmp_path / "child.yaml", CHILD.replace("Answer.", "Reply."))
    assert load_spec(top).hash != before


def test_a_missing_child_is_part_of_the_identity_not_an_error(tmp_path: Path) -> None:
    parent = write(tmp_path / "parent.yaml", PARENT)
    spec = load_spec(parent)
    assert spec.child_hashes() == {"sub": "missing:child.yaml"}
    write(tmp_path / "child.yaml", CHILD)
    assert load_spec(parent).hash != spec.hash  # the hash was taken when the spec was loaded


def test_a_spec_without_subworkflows_hashes_its_content_alone() -> None:
    spec = spec_from_text(CHILD)
    assert spec.child_hashes() == {}
    assert spec_from_text(CHILD).hash == spec.hash


def test_custom_tool_references_are_identity() -> None:
    with_tool = CHILD + "tools: {lookup: 'mypkg.tools:lookup'}\n"
    other = CHILD + "tools: {lookup: 'mypkg.tools:lookup_v2'}\n"
    assert spec_from_text(with_tool).hash != spec_from_text(other).hash
    assert spec_from_text(with_tool).identity(Settings())["tools"] == {"lookup": "mypkg.tools:lookup"}


def test_model_aliases_are_recorded_beside_the_hash_as_settings_resolve_them() -> None:
    spec = spec_from_text(CHILD.replace("outputs: [a]}", "outputs: [a], model: fast}"))
    one = Settings(models={"fast": ModelAlias(model="openai/gpt-4o-mini", params={"top_k": 20})})
    two = Settings(models={"fast": ModelAlias(model="openai/gpt-4o-mini", params={"top_k": 40})})
    ident = spec.identity(one)
    assert ident["hash"] == spec.hash
    assert ident["models"]["fast"] == {"model": "openai/gpt-4o-mini", "api_base": None, "params": {"top_k": 20}}
    assert "local" in ident["models"]  # the workflow default model
    assert spec.identity(one) != spec.identity(two)


def test_a_file_that_includes_itself_still_loads_and_validation_reports_it(tmp_path: Path) -> None:
    from agentforge.workflow.validate import find_problems

    path = write(tmp_path / "loop.yaml", PARENT.replace("child.yaml", "loop.yaml"))
    spec = load_spec(path)
    assert load_spec(path).hash == spec.hash  # hashing stops at the cycle instead of recursing forever
    assert len(spec.child_hashes()["sub"]) == 16
    assert "subworkflow_depth" in {p.code for p in find_problems(spec)}
