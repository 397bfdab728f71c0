"""Loading a workflow file: every schema-level mistake comes back as a located ``Problem``.

Each bad workflow is a small YAML text written to a file, so the problem names that file; the
expected line is found by searching the text for the offending key, so it stays right when the
YAML changes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentforge.errors import Problem, SpecError
from agentforge.workflow.loader import load_spec, spec_from_text
from tests.unit.yaml_text import HEAD, line_of


def problems_of(tmp_path: Path, text: str, name: str = "wf.yaml") -> tuple[Path, list[Problem]]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return path, info.value.problems


def only(problems: list[Problem], code: str) -> Problem:
    found = [p for p in problems if p.code == code]
    assert len(found) == 1, f"expected one '{code}' problem, got {[p.render() for p in problems]}"
    return found[0]


UNKNOWN_KIND = HEAD + """\
nodes:
  - id: a
    kind: agnet
    instruction: Answer.
    inputs: [question]
    outputs: [answer]
"""

UNKNOWN_FIELD = HEAD + """\
nodes:
  - id: a
    kind: agent
    instrucion: Answer.
    inputs: [question]
    outputs: [answer]
"""

MISSING_TOOL = HEAD + """\
nodes:
  - id: a
    kind: tool
    inputs: [question]
    outputs: [answer]
"""


def test_unknown_node_kind_names_node_line_and_suggests_the_kind(tmp_path: Path) -> None:
    path, problems = problems_of(tmp_path, UNKNOWN_KIND)
    p = only(problems, "union_tag_invalid")
    assert p.node == "a"
    assert p.file == str(path)
    assert p.line == line_of(UNKNOWN_KIND, "kind: agnet")
    assert "agnet" in p.message
    assert p.hint == "did you mean 'agent'?"
    assert f"{path}:{p.line}" in p.render()
    assert "node 'a'" in p.render()


def test_unknown_node_field_names_node_line_and_suggests_the_field(tmp_path: Path) -> None:
    path, problems = problems_of(tmp_path, UNKNOWN_FIELD)
    p = only(problems, "extra_forbidden")
    assert (p.node, p.field, p.file) == ("a", "instrucion", str(path))
    assert p.line == line_of(UNKNOWN_FIELD, "instrucion:")
    assert "unknown field 'instrucion'" in p.message
    assert p.hint == "did you mean 'instruction'?"
    rendered = p.render()
    assert f"{path}:{p.line}" in rendered
    assert "node 'a'" in rendered
    assert "did you mean 'instruction'?" in rendered


def test_missing_required_field_names_the_field_and_the_node(tmp_path: Path) -> None:
    path, problems = problems_of(tmp_path, MISSING_TOOL)
    p = only(problems, "missing")
    assert (p.node, p.field, p.file) == ("a", "tool", str(path))
    assert p.line == line_of(MISSING_TOOL, "- id: a")
    assert "missing required field 'tool'" in p.message
    assert f"{path}:{p.line}" in p.render()
    assert "node 'a'" in p.render()


@pytest.mark.parametrize("text", [UNKNOWN_KIND, UNKNOWN_FIELD, MISSING_TOOL],
                         ids=["kind", "field", "missing"])
def test_a_bad_node_reports_only_its_own_problem(tmp_path: Path, text: str) -> None:
    # The workflow does have a node; a "nodes should have at least 1 item" problem would be false.
    _, problems = problems_of(tmp_path, text)
    assert len(problems) == 1, [p.render() for p in problems]
    assert all(p.node == "a" for p in problems)


def test_node_without_kind_lists_the_kinds(tmp_path: Path) -> None:
    text = HEAD + "nodes:\n  - id: a\n    inputs: [question]\n    outputs: [answer]\n"
    _, problems = problems_of(tmp_path, text)
    p = only(problems, "union_tag_not_found")
    assert p.node == "a"
    assert p.line == line_of(text, "- id: a")
    assert p.hint is not None
    assert "agent" in p.hint and "router" in p.hint


def test_misspelt_key_in_an_edge_suggests_from(tmp_path: Path) -> None:
    text = HEAD + """\
nodes:
  - id: a
    kind: agent
    inputs: [question]
    outputs: [notes]
  - id: b
    kind: agent
    inputs: [notes]
    outputs: [answer]
edges:
  - {form: a, to: b}
"""
    _, problems = problems_of(tmp_path, text)
    p = only(problems, "extra_forbidden")
    assert p.line == line_of(text, "{form: a")
    assert p.hint == "did you mean 'from'?"


def test_misspelt_key_in_defaults_and_route_suggest_the_right_names(tmp_path: Path) -> None:
    text = HEAD + """\
defaults:
  temprature: 0.5
nodes:
  - id: a
    kind: agent
    inputs: [question]
    outputs: [answer]
  - id: r
    kind: router
    inputs: [answer]
    routes:
      - {wen: "answer == 'x'", to: END}
    default: END
edges:
  - {from: a, to: r}
"""
    _, problems = problems_of(tmp_path, text)
    extra = {p.field: p for p in problems if p.code == "extra_forbidden"}
    assert extra["defaults.temprature"].hint == "did you mean 'temperature'?"
    assert extra["defaults.temprature"].line == line_of(text, "temprature:")
    route = extra["routes.wen"]
    assert (route.node, route.hint) == ("r", "did you mean 'when'?")
    assert route.line == line_of(text, "{wen:")


def test_out_of_range_value_names_node_field_and_line(tmp_path: Path) -> None:
    text = HEAD + "nodes:\n  - id: a\n    kind: agent\n    temperature: 7\n    outputs: [answer]\n"
    path, problems = problems_of(tmp_path, text)
    p = only(problems, "less_than_equal")
    assert (p.node, p.field, p.file) == ("a", "temperature", str(path))
    assert p.line == line_of(text, "temperature: 7")
    assert "2" in p.message


def test_every_schema_problem_in_a_file_is_reported_at_once(tmp_path: Path) -> None:
    text = HEAD + """\
nodes:
  - id: a
    kind: agnet
    outputs: [answer]
  - id: b
    kind: agent
    instrucion: Answer.
    outputs: [answer]
  - id: c
    kind: tool
    outputs: [answer]
"""
    _, problems = problems_of(tmp_path, text)
    found = {(p.code, p.node) for p in problems}
    assert {("union_tag_invalid", "a"), ("extra_forbidden", "b"), ("missing", "c")} <= found
    lines = {p.node: p.line for p in problems if p.node}
    assert lines["b"] == line_of(text, "instrucion:")
    assert lines["c"] == line_of(text, "- id: c")


def test_malformed_yaml_reports_the_line_of_the_syntax_error(tmp_path: Path) -> None:
    text = HEAD + """\
nodes:
  - id: a
    kind: agent
      instruction: indented too far
    outputs: [answer]
"""
    path, problems = problems_of(tmp_path, text)
    (p,) = problems
    assert p.code == "yaml"
    assert p.file == str(path)
    assert p.line == line_of(text, "instruction: indented too far")
    assert p.message.startswith("malformed YAML")
    assert f"{path}:{p.line}" in p.render()


def test_malformed_yaml_from_text_is_a_spec_error_not_a_yaml_error() -> None:
    with pytest.raises(SpecError) as info:
        spec_from_text("nodes: [unclosed\n", file="inline.yaml")
    (p,) = info.value.problems
    assert (p.code, p.file) == ("yaml", "inline.yaml")
    assert p.line is not None


def test_missing_file_is_reported_with_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(SpecError) as info:
        load_spec(missing)
    (p,) = info.value.problems
    assert (p.code, p.file) == ("not_found", str(missing))
    assert str(missing) in str(info.value)
    assert "file not found" in str(info.value)


def test_directory_instead_of_file_is_reported_as_unreadable(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "dir.yaml")
    (p,) = info.value.problems
    assert p.code == "unreadable"
    assert p.file == str(tmp_path / "dir.yaml")


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n"], ids=["empty", "list", "scalar"])
def test_a_file_that_is_not_a_mapping_is_rejected_with_its_name(tmp_path: Path, text: str) -> None:
    path, problems = problems_of(tmp_path, text)
    (p,) = problems
    assert p.file == str(path)
    assert p.line == 1
    assert "mapping" in p.message


def test_spec_error_message_lists_every_problem(tmp_path: Path) -> None:
    text = HEAD + """\
nodes:
  - id: a
    kind: agnet
    outputs: [answer]
  - id: b
    kind: agent
    instrucion: Answer.
    outputs: [answer]
"""
    path = tmp_path / "wf.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    for p in info.value.problems:
        assert p.render() in message
    assert "agnet" in message and "instrucion" in message


def test_loaded_spec_remembers_its_file_and_key_lines(tmp_path: Path) -> None:
    text = HEAD + "nodes:\n  - id: a\n    kind: agent\n    prompt: '{question}'\n" \
                  "    inputs: [question]\n    outputs: [answer]\n"
    path = tmp_path / "ok.yaml"
    path.write_text(text, encoding="utf-8")
    spec = load_spec(path)
    assert spec.source_file == str(path)
    assert spec._source.node_line("a") == line_of(text, "- id: a")
    assert spec._source.line(("nodes", 0, "prompt")) == line_of(text, "prompt:")
