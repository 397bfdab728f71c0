"""``agentforge diff A.yaml B.yaml``: what changed, by node and field; exit 0 equal or not, 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from agentforge.cli import app
from agentforge.workflow.edits import edits_from_json_patch
from agentforge.workflow.loader import load_spec
from tests.conftest import WORKFLOWS

runner = CliRunner()
COT = WORKFLOWS / "cot_qa.yaml"


def edited_copy(tmp_path: Path) -> Path:
    data = yaml.safe_load(COT.read_text(encoding="utf-8"))
    data["nodes"][0]["instruction"] = "Answer tersely."
    path = tmp_path / "cot_edited.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_equal_workflows_say_so_and_exit_0() -> None:
    result = runner.invoke(app, ["diff", str(COT), str(COT)])
    assert result.exit_code == 0, result.output
    assert "no differences" in result.output


def test_a_changed_instruction_is_shown_under_its_node_and_field(tmp_path: Path) -> None:
    result = runner.invoke(app, ["diff", str(COT), str(edited_copy(tmp_path))])
    assert result.exit_code == 0, result.output
    node_id = load_spec(COT).nodes[0].id
    lines = result.output.splitlines()
    header = lines.index(f"node {node_id}")
    assert lines[header + 1].startswith("  ~ instruction: ")
    assert "Answer tersely." in result.output


def test_added_and_removed_nodes_and_edges_are_marked() -> None:
    result = runner.invoke(app, ["diff", str(COT), str(WORKFLOWS / "math_code.yaml")])
    assert result.exit_code == 0, result.output
    assert "  + added: " in result.output and "  - removed: " in result.output
    assert "edges" in result.output and "+ write_code -> run_code" in result.output


def test_json_output_carries_typed_edits_and_an_rfc6902_patch(tmp_path: Path) -> None:
    edited = edited_copy(tmp_path)
    result = runner.invoke(app, ["diff", "--json", str(COT), str(edited)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    (edit,) = data["edits"]
    assert edit["op"] == "set_component" and edit["after"].startswith("Answer tersely.")
    a, b = load_spec(COT), load_spec(edited)
    assert (data["from"], data["to"]) == (a.hash, b.hash)
    assert a.apply(edits_from_json_patch(a, data["patch"])).hash == b.hash


def test_a_bad_file_exits_2_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: x\nnodes:\n  - {id: a, kind: agnet}\n", encoding="utf-8")
    result = runner.invoke(app, ["diff", str(COT), str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:4" in result.output and "did you mean 'agent'" in result.output
    missing = runner.invoke(app, ["diff", str(COT), str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "file not found" in missing.output
