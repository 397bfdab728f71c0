"""Very large, very long and loop-shaped workflows get a clean answer: linear checks, a size limit,
iterative graph walks, and a loop without a bound reported once, on the router that closes it."""

from __future__ import annotations

import re
from pathlib import Path

import networkx as nx
import pytest
from typer.testing import CliRunner

from agentforge.cli import app
from agentforge.config import Settings, use_settings
from agentforge.errors import SpecError
from agentforge.workflow.loader import load_spec
from agentforge.workflow.render import _layers, back_edges, to_mermaid
from agentforge.workflow.spec import END, START
from agentforge.workflow.validate import find_problems
from tests.unit.yaml_text import HEAD, line_of


def chain(n: int) -> str:
    """A workflow of ``n`` agent nodes in a line, each reading the previous one's output."""
    lines = ["version: 1", "kind: workflow", "name: chain", "inputs:", "  x0: str", "outputs:", f"  x{n}: str",
             "nodes:"]
    for i in range(1, n + 1):
        lines += [f"  - id: n{i}", "    kind: agent", f"    inputs: [x{i - 1}]", f"    outputs: {{x{i}: str}}"]
    lines.append("edges:")
    lines += [f"  - {{from: n{i}, to: n{i + 1}}}" for i in range(1, n)]
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.timeout(60)  # a hang guard: quadratic checks took minutes here; the figure is in benchmarks/
def test_a_10000_node_chain_loads_and_validates(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, chain(10_000)))
    assert find_problems(spec, tool_names=[]) == []


@pytest.mark.timeout(60)
def test_input_order_is_still_checked_on_a_long_chain(tmp_path: Path) -> None:
    text = chain(3000).replace("    inputs: [x0]\n", "    inputs: [x2999]\n", 1)  # n1 reads what n2999 writes
    problems = find_problems(load_spec(write(tmp_path, text)), tool_names=[])
    assert [(p.code, p.node) for p in problems] == [("input_order", "n1")]


def test_a_workflow_over_the_node_limit_is_refused_at_its_nodes_line(tmp_path: Path) -> None:
    text = chain(30)
    with use_settings(Settings(max_workflow_nodes=20)), pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, text))
    (problem,) = info.value.problems
    assert problem.code == "too_large" and "30 nodes, more than 20" in problem.message
    assert problem.line == line_of(text, "nodes:")
    assert problem.hint is not None and "max_workflow_nodes" in problem.hint


def test_the_default_node_limit_is_documented_and_above_10000() -> None:
    assert Settings().max_workflow_nodes >= 10_000
    docs = (Path(__file__).resolve().parents[2] / "docs" / "workflow-format.md").read_text(encoding="utf-8")
    assert "max_workflow_nodes" in docs and "max_workflow_bytes" in docs


def test_a_file_over_the_byte_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = write(tmp_path, chain(5) + "#" * 5000 + "\n")
    with use_settings(Settings(max_workflow_bytes=4096)), pytest.raises(SpecError) as info:
        load_spec(path)
    (problem,) = info.value.problems
    assert problem.code == "too_large" and "4,096 bytes" in problem.message


@pytest.mark.timeout(30)
def test_an_endless_device_is_read_only_up_to_the_limit() -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    with pytest.raises(SpecError) as info:
        load_spec("/dev/zero")
    assert info.value.problems[0].code == "too_large"


# -- graph walks --------------------------------------------------------------------------------------


def test_layers_of_a_5000_node_chain_need_no_recursion() -> None:
    g = nx.DiGraph()
    nx.add_path(g, [START, *(f"n{i}" for i in range(5000)), END])
    g.add_edge("n4999", "n10")  # one loop, closed at the far end
    assert back_edges(g) == {("n4999", "n10")}
    assert _layers(g)[END] == 5001


@pytest.mark.timeout(60)
def test_graph_command_on_a_990_node_chain(tmp_path: Path) -> None:
    path = write(tmp_path, chain(990))
    result = CliRunner().invoke(app, ["graph", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == to_mermaid(load_spec(path))
    pytest.importorskip("matplotlib")
    result = CliRunner().invoke(app, ["graph", str(path), "-f", "svg", "-o", str(tmp_path / "g.svg")])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and (tmp_path / "g.svg").stat().st_size > 0


# -- loops without a bound ------------------------------------------------------------------------------

LOOP_WITHOUT_BOUND_OR_EXIT = HEAD + """\
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
edges:
  - {from: a, to: again}
"""


def test_an_unbounded_loop_is_reported_once_on_its_router(tmp_path: Path) -> None:
    path = write(tmp_path, LOOP_WITHOUT_BOUND_OR_EXIT)
    problems = find_problems(load_spec(path))
    assert [p.code for p in problems] == ["unbounded_cycle"], [p.render() for p in problems]
    (p,) = problems
    assert p.node == "again" and p.field == "max_iterations"
    assert p.line == line_of(LOOP_WITHOUT_BOUND_OR_EXIT, "- id: again")
    assert p.hint is not None and "max_iterations" in p.hint and "on_limit" in p.hint


def test_a_loop_of_plain_edges_is_reported_once_where_it_starts(tmp_path: Path) -> None:
    text = HEAD + """\
nodes:
  - id: a
    kind: agent
    inputs: [question]
    outputs: [answer]
  - id: b
    kind: agent
    inputs: [answer]
    outputs: [notes]
edges:
  - {from: a, to: b}
  - {from: b, to: a}
"""
    problems = find_problems(load_spec(write(tmp_path, text)))
    assert [p.code for p in problems] == ["unbounded_cycle"], [p.render() for p in problems]
    assert problems[0].node == "a" and problems[0].field == "edges" and "a -> b -> a" in problems[0].message


def test_an_unbounded_loop_with_an_exit_names_its_router(tmp_path: Path) -> None:
    text = LOOP_WITHOUT_BOUND_OR_EXIT.replace("    default: a\n", "    default: END\n")
    (p,) = find_problems(load_spec(write(tmp_path, text)))
    assert (p.code, p.node, p.field) == ("unbounded_cycle", "again", "max_iterations")
    assert p.hint is not None and "on_limit" not in p.hint


# -- folders ---------------------------------------------------------------------------------------------


def test_validate_a_folder_checks_every_workflow_and_skips_other_yaml(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    write(folder, chain(2), "good.yaml")
    write(folder, LOOP_WITHOUT_BOUND_OR_EXIT, "loop.yml")
    write(folder, "version: 1\nkind: env\nname: e\nsource: {type: builtin, class: wordle}\n", "env.yaml")
    write(folder, "not yaml", "notes.txt")
    result = CliRunner().invoke(app, ["validate", str(folder)])
    assert result.exit_code == 2, result.output
    stdout, stderr = " ".join(result.stdout.split()), " ".join(result.stderr.split())
    assert f"✓ {folder / 'good.yaml'}" in stdout
    assert f"✗ {folder / 'loop.yml'}: 1 problem(s)" in stderr
    assert f"{folder / 'env.yaml'}: skipped, not a workflow (kind: env)" in stderr
    assert "notes.txt" not in result.output


def test_validate_the_shipped_workflows_folder() -> None:
    folder = Path(__file__).resolve().parents[2] / "workflows"
    result = CliRunner().invoke(app, ["validate", str(folder)])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("✓") == len(list(folder.glob("*.yaml")))


def test_validate_a_folder_without_workflows_exits_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "no workflow files" in result.stderr


@pytest.mark.timeout(60)  # a hang guard: every problem's 'did you mean' search over 3,000 ids took 48 s
def test_thousands_of_bad_targets_are_all_reported_quickly(tmp_path: Path) -> None:
    text = re.sub(r"to: n(\d+)\}", r"to: m\1}", chain(3000))  # every edge points at a node that is not there
    problems = find_problems(load_spec(write(tmp_path, text)), tool_names=[])
    assert sum(p.code == "unknown_node" for p in problems) == 2999
    assert any(p.hint and "did you mean" in p.hint for p in problems)


def test_layers_set_aside_loops_among_unreachable_nodes_too() -> None:
    g = nx.DiGraph([(START, "a"), ("a", END), ("x", "y"), ("y", "x")])  # x <-> y: never reached from START
    assert len(back_edges(g) & {("x", "y"), ("y", "x")}) == 1
    assert _layers(g)[END] == 2
