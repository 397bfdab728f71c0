"""Static validation: every graph-level mistake is found before anything runs, located and explained.

Each bad workflow is a small YAML text written to a file; the expected line is found by searching
the text for the offending key so the assertions stay right when the YAML changes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentforge.errors import Problem, SpecError
from agentforge.tools import default_registry
from agentforge.workflow.loader import load_spec
from agentforge.workflow.validate import check, find_problems
from tests.conftest import WORKFLOWS
from tests.unit.yaml_text import HEAD, line_of

TOOL_NAMES = default_registry().names()  # validation checks tool names against what the caller knows


def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_in(path: Path) -> list[Problem]:
    try:
        spec = load_spec(path)
    except SpecError as exc:
        return exc.problems
    return find_problems(spec, tool_names=TOOL_NAMES)


def only(problems: list[Problem], code: str) -> Problem:
    found = [p for p in problems if p.code == code]
    assert len(found) == 1, f"expected one '{code}' problem, got {[p.render() for p in problems]}"
    return found[0]


def assert_located(p: Problem, path: Path, line: int, node: str) -> None:
    assert p.file == str(path)
    assert p.line == line
    assert p.node == node
    rendered = p.render()
    assert f"{path}:{line}" in rendered
    assert f"node '{node}'" in rendered


# -- the catalogue of bad workflows ------------------------------------------------------------

TYPE_MISMATCH = HEAD + """\
nodes:
  - id: count
    kind: agent
    inputs: [question]
    outputs: {n: int}
  - id: use
    kind: agent
    inputs: {n: bool}
    outputs: [answer]
edges:
  - {from: count, to: use}
"""

WORKFLOW_OUTPUT_MISMATCH = HEAD.replace("answer: str", "answer: int") + """\
nodes:
  - id: a
    kind: agent
    inputs: [question]
    outputs: {answer: bool}
"""

UNBOUND_VARIABLE = HEAD + """\
nodes:
  - id: a
    kind: agent
    prompt: "Q: {question} Context: {context}"
    inputs: [question]
    outputs: [answer]
"""

UNKNOWN_TOOL = HEAD + """\
nodes:
  - id: a
    kind: agent
    inputs: [question]
    outputs: [answer]
    tools: [calculater]
"""

UNKNOWN_MODEL = HEAD + """\
nodes:
  - id: a
    kind: agent
    model: fastt
    inputs: [question]
    outputs: [answer]
"""

UNREACHABLE = HEAD + """\
nodes:
  - id: a
    kind: agent
    inputs: [question]
    outputs: [answer]
  - id: orphan
    kind: agent
    inputs: [question]
    outputs: [note]
"""

NO_EXIT = HEAD + """\
nodes:
  - id: a
    kind: agent
    inputs: [question]
    outputs: [answer]
  - id: again
    kind: router
    inputs: [answer]
    routes:
      - {when: "answer == 'retry'", to: a}
    default: a
    max_iterations: 3
edges:
  - {from: a, to: again}
"""

UNBOUNDED_CYCLE = HEAD + """\
nodes:
  - id: a
    kind: agent
    inputs: [question]
    outputs: [answer]
  - id: b
    kind: router
    inputs: [answer]
    routes:
      - {when: "answer == 'retry'", to: a}
    default: END
edges:
  - {from: a, to: b}
"""

DUPLICATE_ID = HEAD + """\
nodes:
  - id: a
    kind: agent
    inputs: [question]
    outputs: [answer]
  - id: a
    kind: agent
    inputs: [question]
    outputs: [answer]
"""

UNKNOWN_EDGE_TARGET = HEAD + """\
nodes:
  - id: first
    kind: agent
    inputs: [question]
    outputs: [notes]
  - id: second
    kind: agent
    inputs: [notes]
    outputs: [answer]
edges:
  - {from: first, to: secnd}
"""

INPUT_FROM_LATER_NODE = HEAD + """\
nodes:
  - id: first
    kind: agent
    inputs: [question, notes]
    outputs: [answer]
  - id: second
    kind: agent
    inputs: [question]
    outputs: [notes]
edges:
  - {from: first, to: second}
"""

ROUTER_WITHOUT_DEFAULT = HEAD + """\
nodes:
  - id: a
    kind: agent
    inputs: [question]
    outputs: [answer]
  - id: r
    kind: router
    inputs: [answer]
    routes:
      - {when: "answer == 'x'", to: END}
edges:
  - {from: a, to: r}
"""


def test_output_to_input_type_mismatch_names_consumer_and_producer(tmp_path: Path) -> None:
    path = write(tmp_path, TYPE_MISMATCH)
    p = only(problems_in(path), "type_mismatch")
    assert_located(p, path, line_of(TYPE_MISMATCH, "inputs: {n: bool}"), "use")
    assert p.field == "inputs.n"
    assert "bool" in p.message and "int" in p.message and "'count'" in p.message
    assert p.hint is not None and "bool" in p.hint


def test_int_output_may_flow_into_float_input(tmp_path: Path) -> None:
    path = write(tmp_path, TYPE_MISMATCH.replace("inputs: {n: bool}", "inputs: {n: float}"))
    assert problems_in(path) == []


def test_workflow_output_type_mismatch_points_at_the_output_and_names_the_producer(tmp_path: Path) -> None:
    path = write(tmp_path, WORKFLOW_OUTPUT_MISMATCH)
    p = only(problems_in(path), "type_mismatch")
    assert p.file == str(path)
    assert p.line == line_of(WORKFLOW_OUTPUT_MISMATCH, "answer: int")
    assert p.field == "outputs.answer"
    assert "node 'a'" in p.message and "int" in p.message and "bool" in p.message
    assert f"{path}:{p.line}" in p.render()


def test_unbound_prompt_variable_names_node_line_and_suggests_binding_it(tmp_path: Path) -> None:
    path = write(tmp_path, UNBOUND_VARIABLE)
    p = only(problems_in(path), "unbound_variable")
    assert_located(p, path, line_of(UNBOUND_VARIABLE, "prompt:"), "a")
    assert p.field == "prompt"
    assert "{context}" in p.message
    assert p.hint is not None and "add 'context' to the node's inputs" in p.hint


def test_unbound_variable_close_to_an_input_suggests_it(tmp_path: Path) -> None:
    text = UNBOUND_VARIABLE.replace("{context}", "{questoin}")
    path = write(tmp_path, text)
    p = only(problems_in(path), "unbound_variable")
    assert p.hint is not None and "did you mean '{question}'?" in p.hint


def test_unknown_tool_names_node_line_and_suggests_the_tool(tmp_path: Path) -> None:
    path = write(tmp_path, UNKNOWN_TOOL)
    p = only(problems_in(path), "unknown_tool")
    assert_located(p, path, line_of(UNKNOWN_TOOL, "tools: [calculater]"), "a")
    assert "calculater" in p.message
    assert p.hint == "did you mean 'calculator'?"


def test_unknown_tool_node_is_reported_too(tmp_path: Path) -> None:
    text = HEAD + """\
nodes:
  - id: calc
    kind: tool
    tool: calculater
    args: {expression: "{question}"}
    inputs: [question]
    outputs: [answer]
"""
    path = write(tmp_path, text)
    p = only(problems_in(path), "unknown_tool")
    assert_located(p, path, line_of(text, "tool: calculater"), "calc")
    assert p.hint == "did you mean 'calculator'?"


def test_unknown_model_alias_names_node_line_and_says_how_to_fix(tmp_path: Path) -> None:
    path = write(tmp_path, UNKNOWN_MODEL)
    p = only(problems_in(path), "unknown_model")
    assert_located(p, path, line_of(UNKNOWN_MODEL, "model: fastt"), "a")
    assert "fastt" in p.message
    assert p.hint is not None and "agentforge.yaml" in p.hint


def test_unknown_model_alias_suggests_a_configured_alias(tmp_path: Path) -> None:
    (tmp_path / "agentforge.yaml").write_text("models:\n  fast: openai/gpt-4o-mini\n", encoding="utf-8")
    path = write(tmp_path, UNKNOWN_MODEL)
    p = only(problems_in(path), "unknown_model")
    assert p.hint == "did you mean 'fast'?"
    path.write_text(UNKNOWN_MODEL.replace("model: fastt", "model: fast"), encoding="utf-8")
    assert problems_in(path) == []


def test_unknown_default_model_is_reported_at_the_defaults(tmp_path: Path) -> None:
    text = HEAD + "defaults:\n  model: locl\n" + UNKNOWN_MODEL[len(HEAD):].replace("    model: fastt\n", "")
    path = write(tmp_path, text)
    p = only(problems_in(path), "unknown_model")
    assert (p.field, p.line) == ("defaults.model", line_of(text, "model: locl"))
    assert p.hint == "did you mean 'local'?"


def test_provider_model_strings_need_no_alias(tmp_path: Path) -> None:
    path = write(tmp_path, UNKNOWN_MODEL.replace("model: fastt", "model: openai/gpt-4o-mini"))
    assert problems_in(path) == []


def test_unreachable_node_names_node_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, UNREACHABLE)
    p = only(problems_in(path), "unreachable")
    assert_located(p, path, line_of(UNREACHABLE, "- id: orphan"), "orphan")
    assert p.hint is not None and "edge" in p.hint


def test_loop_whose_router_only_routes_back_has_no_exit(tmp_path: Path) -> None:
    path = write(tmp_path, NO_EXIT)
    no_exit = {p.node: p for p in problems_in(path) if p.code == "no_exit"}
    assert set(no_exit) == {"a", "again"}
    assert_located(no_exit["again"], path, line_of(NO_EXIT, "- id: again"), "again")
    assert_located(no_exit["a"], path, line_of(NO_EXIT, "- id: a"), "a")
    assert no_exit["again"].hint is not None and "END" in no_exit["again"].hint


def test_on_limit_to_end_gives_the_loop_an_exit(tmp_path: Path) -> None:
    text = NO_EXIT.replace("    max_iterations: 3\n", "    max_iterations: 3\n    on_limit: END\n")
    path = write(tmp_path, text)
    assert problems_in(path) == []


def test_cycle_without_max_iterations_is_reported_on_a_node_of_the_loop(tmp_path: Path) -> None:
    path = write(tmp_path, UNBOUNDED_CYCLE)
    p = only(problems_in(path), "unbounded_cycle")
    assert p.node in {"a", "b"}
    assert_located(p, path, line_of(UNBOUNDED_CYCLE, f"- id: {p.node}"), p.node)
    assert "a" in p.message and "b" in p.message
    assert p.hint is not None and "max_iterations" in p.hint


def test_max_iterations_bounds_the_cycle(tmp_path: Path) -> None:
    text = UNBOUNDED_CYCLE.replace("    default: END\n", "    default: END\n    max_iterations: 2\n")
    path = write(tmp_path, text)
    assert problems_in(path) == []


def test_self_loop_without_a_bound_is_reported(tmp_path: Path) -> None:
    text = HEAD + """\
nodes:
  - id: a
    kind: agent
    inputs: [question]
    outputs: [answer]
edges:
  - {from: a, to: [a, END]}
"""
    path = write(tmp_path, text)
    p = only(problems_in(path), "unbounded_cycle")
    assert_located(p, path, line_of(text, "- id: a"), "a")


def test_duplicate_id_points_at_the_second_definition(tmp_path: Path) -> None:
    path = write(tmp_path, DUPLICATE_ID)
    p = only(problems_in(path), "duplicate_id")
    assert_located(p, path, line_of(DUPLICATE_ID, "- id: a", nth=2), "a")
    assert "first defined as node #1" in p.message
    assert p.hint is not None and "unique" in p.hint


def test_reserved_id_is_rejected(tmp_path: Path) -> None:
    text = HEAD + "nodes:\n  - id: END\n    kind: agent\n    inputs: [question]\n    outputs: [answer]\n"
    path = write(tmp_path, text)
    p = only(problems_in(path), "reserved_id")
    assert_located(p, path, line_of(text, "- id: END"), "END")


def test_unknown_edge_target_points_at_the_edge_and_suggests_the_node(tmp_path: Path) -> None:
    path = write(tmp_path, UNKNOWN_EDGE_TARGET)
    p = only(problems_in(path), "unknown_node")
    assert p.file == str(path)
    assert p.line == line_of(UNKNOWN_EDGE_TARGET, "to: secnd")
    assert p.field == "to"
    assert "secnd" in p.message
    assert p.hint == "did you mean 'second'?"
    assert f"{path}:{p.line}" in p.render()


def test_unknown_route_target_names_the_router(tmp_path: Path) -> None:
    text = HEAD + """\
nodes:
  - id: a
    kind: agent
    inputs: [question]
    outputs: [answer]
  - id: r
    kind: router
    inputs: [answer]
    routes:
      - {when: "answer == 'x'", to: ENDD}
    default: END
edges:
  - {from: a, to: r}
"""
    path = write(tmp_path, text)
    p = only(problems_in(path), "unknown_node")
    assert_located(p, path, line_of(text, "to: ENDD"), "r")
    assert p.field == "routes[0].to"
    assert p.hint == "did you mean 'END'?"


def test_input_produced_only_by_a_later_node_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, INPUT_FROM_LATER_NODE)
    p = only(problems_in(path), "input_order")
    assert_located(p, path, line_of(INPUT_FROM_LATER_NODE, "inputs: [question, notes]"), "first")
    assert "'notes'" in p.message and "'second'" in p.message


def test_input_nobody_produces_suggests_a_close_name(tmp_path: Path) -> None:
    text = HEAD + "nodes:\n  - id: a\n    kind: agent\n    inputs: [questoin]\n    outputs: [answer]\n"
    path = write(tmp_path, text)
    p = only(problems_in(path), "unproduced_input")
    assert_located(p, path, line_of(text, "inputs: [questoin]"), "a")
    assert p.hint == "did you mean 'question'?"


def test_router_without_default_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, ROUTER_WITHOUT_DEFAULT)
    p = only(problems_in(path), "router_default")
    assert_located(p, path, line_of(ROUTER_WITHOUT_DEFAULT, "- id: r"), "r")
    assert p.field == "default"


def test_router_condition_on_a_name_that_is_not_an_input_is_reported(tmp_path: Path) -> None:
    text = HEAD + """\
nodes:
  - id: a
    kind: agent
    inputs: [question]
    outputs: [answer]
  - id: r
    kind: router
    inputs: [answer]
    routes:
      - {when: "score > 3", to: END}
    default: END
edges:
  - {from: a, to: r}
"""
    path = write(tmp_path, text)
    p = only(problems_in(path), "unbound_variable")
    assert_located(p, path, line_of(text, "score > 3"), "r")
    assert "'score'" in p.message
    assert p.hint == "add 'score' to inputs"


# -- all at once ---------------------------------------------------------------------------------

FOUR_ERRORS = HEAD + """\
nodes:
  - id: a
    kind: agent
    model: fastt
    prompt: "{missing}"
    inputs: [question]
    outputs: [answer]
    tools: [calculater]
  - id: b
    kind: agent
    inputs: [question]
    outputs: [note]
"""


def test_four_different_errors_are_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, FOUR_ERRORS)
    problems = problems_in(path)
    assert {p.code for p in problems} == {"unknown_model", "unbound_variable", "unknown_tool", "unreachable"}
    by_code = {p.code: p for p in problems}
    assert by_code["unknown_model"].line == line_of(FOUR_ERRORS, "model: fastt")
    assert by_code["unbound_variable"].line == line_of(FOUR_ERRORS, "prompt:")
    assert by_code["unknown_tool"].line == line_of(FOUR_ERRORS, "tools: [calculater]")
    assert by_code["unreachable"].line == line_of(FOUR_ERRORS, "- id: b")
    assert all(p.file == str(path) for p in problems)


def test_check_raises_one_spec_error_carrying_every_problem(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, FOUR_ERRORS))
    with pytest.raises(SpecError) as info:
        check(spec, tool_names=TOOL_NAMES)
    assert len(info.value.problems) == 4
    assert str(info.value).startswith("4 problems found")
    for p in info.value.problems:
        assert p.render() in str(info.value)


def test_check_returns_a_valid_spec_unchanged() -> None:
    spec = load_spec(WORKFLOWS / "cot_qa.yaml")
    assert check(spec) is spec


# -- every error suggests a fix -------------------------------------------------------------------

CATALOGUE = {
    "type_mismatch": TYPE_MISMATCH,
    "workflow_output_mismatch": WORKFLOW_OUTPUT_MISMATCH,
    "unbound_variable": UNBOUND_VARIABLE,
    "unknown_tool": UNKNOWN_TOOL,
    "unknown_model": UNKNOWN_MODEL,
    "unreachable": UNREACHABLE,
    "no_exit": NO_EXIT,
    "unbounded_cycle": UNBOUNDED_CYCLE,
    "duplicate_id": DUPLICATE_ID,
    "unknown_edge_target": UNKNOWN_EDGE_TARGET,
    "input_from_later_node": INPUT_FROM_LATER_NODE,
    "router_without_default": ROUTER_WITHOUT_DEFAULT,
    "missing_required_field": HEAD + "nodes:\n  - id: a\n    kind: tool\n    outputs: [answer]\n",
}


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_every_problem_has_a_file_a_line_and_a_hint(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, CATALOGUE[name])
    problems = problems_in(path)
    assert problems, f"{name}: no problem found"
    for p in problems:
        assert p.file == str(path), p.render()
        assert p.line is not None, p.render()
        assert p.hint, f"{name}: no suggested fix in: {p.render()}"


# -- type names ----------------------------------------------------------------------------------

ONE_NODE = "nodes:\n  - id: a\n    kind: agent\n    inputs: [question]\n    outputs: [answer]\n"


@pytest.mark.parametrize(
    ("where", "text", "needle"),
    [
        ("workflow input", HEAD.replace("question: str", "question: strng") + ONE_NODE, "question: strng"),
        ("workflow output", HEAD.replace("answer: str", "answer: strng") + ONE_NODE, "answer: strng"),
        ("agent output", HEAD + "nodes:\n  - id: a\n    kind: agent\n    inputs: [question]\n"
         "    outputs: {answer: strng}\n", "outputs: {answer: strng}"),
        ("node input", HEAD + "nodes:\n  - id: a\n    kind: agent\n    inputs: {question: strng}\n"
         "    outputs: [answer]\n", "inputs: {question: strng}"),
        ("code output", HEAD + "nodes:\n  - id: a\n    kind: code\n    source: print(1)\n"
         "    outputs: {answer: strng}\n", "outputs: {answer: strng}"),
    ],
    ids=["workflow-input", "workflow-output", "agent-output", "node-input", "code-output"],
)
def test_unknown_type_name_is_a_problem_with_a_suggestion(tmp_path: Path, where: str, text: str,
                                                          needle: str) -> None:
    path = write(tmp_path, text)
    problems = problems_in(path)  # must not raise ValueError
    bad = [p for p in problems if p.code == "bad_type"]
    assert bad, f"{where}: no bad_type problem in {[p.render() for p in problems]}"
    assert bad[0].file == str(path)
    assert bad[0].line == line_of(text, needle)
    assert "did you mean 'str'?" in bad[0].message + (bad[0].hint or "")


# -- subworkflows ------------------------------------------------------------------------------

PARENT = HEAD + """\
nodes:
  - id: sub
    kind: subworkflow
    workflow: child.yaml
    inputs: [question]
    outputs: [answer]
"""

CHILD_OK = HEAD.replace("name: t", "name: child") + """\
nodes:
  - id: inner
    kind: agent
    prompt: "{question}"
    inputs: [question]
    outputs: [answer]
"""


def test_missing_subworkflow_file_is_reported_on_the_node(tmp_path: Path) -> None:
    path = write(tmp_path, PARENT)
    p = only(problems_in(path), "subworkflow_missing")
    assert_located(p, path, line_of(PARENT, "workflow: child.yaml"), "sub")
    assert "child.yaml" in p.message


def test_valid_subworkflow_passes_and_binds_its_types(tmp_path: Path) -> None:
    write(tmp_path, CHILD_OK, "child.yaml")
    assert problems_in(write(tmp_path, PARENT)) == []


def test_subworkflow_output_type_flows_into_the_parent(tmp_path: Path) -> None:
    write(tmp_path, CHILD_OK, "child.yaml")
    text = PARENT.replace("answer: str", "answer: int", 1)
    path = write(tmp_path, text)
    p = only(problems_in(path), "type_mismatch")
    assert p.line == line_of(text, "answer: int")


def test_problems_inside_a_child_file_are_reported_with_the_child_file_name(tmp_path: Path) -> None:
    child_text = CHILD_OK.replace('"{question}"', '"{question} {nope}"').replace(
        "    outputs: [answer]\n", "    outputs: [answer]\n    tools: [calculater]\n")
    child = write(tmp_path, child_text, "child.yaml")
    problems = problems_in(write(tmp_path, PARENT))
    assert {p.code for p in problems} == {"unbound_variable", "unknown_tool"}
    for p in problems:
        assert p.file == str(child)
        assert p.node == "inner"
        assert str(child) in p.render()
    lines = {p.code: p.line for p in problems}
    assert lines == {"unbound_variable": line_of(child_text, "prompt:"),
                     "unknown_tool": line_of(child_text, "tools: [calculater]")}


def test_schema_problems_in_a_child_file_are_reported_with_the_child_file_name(tmp_path: Path) -> None:
    child_text = CHILD_OK.replace("kind: agent", "kind: agnet")
    child = write(tmp_path, child_text, "child.yaml")
    problems = problems_in(write(tmp_path, PARENT))
    p = only(problems, "union_tag_invalid")
    assert (p.file, p.node, p.hint) == (str(child), "inner", "did you mean 'agent'?")


def test_subworkflow_including_itself_is_stopped(tmp_path: Path) -> None:
    text = PARENT.replace("workflow: child.yaml", "workflow: wf.yaml")
    problems = problems_in(write(tmp_path, text))
    assert "subworkflow_depth" in {p.code for p in problems}


# -- the shipped examples ------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_workflow_validates_with_zero_problems(path: Path) -> None:
    spec = load_spec(path)
    assert find_problems(spec) == []


def test_there_are_shipped_workflows_to_validate() -> None:
    assert len(list(WORKFLOWS.glob("*.yaml"))) >= 6
