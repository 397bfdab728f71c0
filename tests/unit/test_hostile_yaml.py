"""Hostile or mistaken YAML is refused cleanly: a located ``SpecError`` (exit 2 at the CLI), quickly.

Covers workflow files, environment files and the settings file (``agentforge.yaml``), which all go
through ``agentforge._yaml``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentforge.cli import app
from agentforge.config import load_settings
from agentforge.envs.registry import load_env_spec
from agentforge.errors import ConfigError, SpecError
from agentforge.workflow.loader import load_spec, spec_from_text
from tests.unit.yaml_text import HEAD, line_of

LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""

NODES = """\
nodes:
  - id: a
    kind: agent
    inputs: [question]
    outputs: [answer]
"""


def refused(path: Path) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return info.value


@pytest.mark.timeout(20)
def test_billion_laughs_workflow_is_refused_fast_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "lol.yaml"
    text = HEAD + LAUGHS + NODES
    path.write_text(text, encoding="utf-8")
    start = time.perf_counter()
    exc = refused(path)
    elapsed = time.perf_counter() - start
    (problem,) = exc.problems
    assert problem.code == "yaml_alias"
    assert "aliases expand" in problem.message
    assert problem.file == str(path)
    assert problem.line is not None and line_of(text, "a: &a") <= problem.line <= line_of(text, "i: &i")
    assert elapsed < 5  # a hang guard only; the benchmark gives the real figure


@pytest.mark.timeout(20)
def test_billion_laughs_exits_2_at_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "lol.yaml"
    path.write_text(HEAD + LAUGHS + NODES, encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "aliases expand" in result.stderr and f"{path}:" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.timeout(20)
def test_billion_laughs_env_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "env.yaml"
    path.write_text("version: 1\nkind: env\nname: lol\n" + LAUGHS + "source: {type: builtin, class: wordle}\n",
                    encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_env_spec(path)
    assert info.value.problems[0].code == "yaml_alias"


@pytest.mark.timeout(20)
def test_billion_laughs_settings_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "agentforge.yaml").write_text(LAUGHS, encoding="utf-8")
    with pytest.raises(ConfigError, match="aliases expand"):
        load_settings(cwd=tmp_path)


def test_anchors_used_as_the_format_intends_still_work() -> None:
    text = HEAD + """\
nodes:
  - id: a
    kind: agent
    instruction: &shared Answer briefly and precisely.
    inputs: [question]
    outputs: [draft]
  - id: b
    kind: agent
    instruction: *shared
    inputs: [draft]
    outputs: [answer]
edges:
  - {from: a, to: b}
"""
    spec = spec_from_text(text)
    assert spec.node("b").instruction == spec.node("a").instruction == "Answer briefly and precisely."


@pytest.mark.timeout(20)
def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text(HEAD + "description: &d [*d]\n" + NODES, encoding="utf-8")
    (problem,) = refused(path).problems
    assert problem.code == "yaml_alias" and "its own anchor" in problem.message


@pytest.mark.timeout(20)
def test_deep_nesting_is_refused_without_a_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(HEAD + "description: " + "[" * 900 + "]" * 900 + "\n" + NODES, encoding="utf-8")
    (problem,) = refused(path).problems
    assert problem.code == "yaml_depth" and problem.line == 8


@pytest.mark.timeout(20)
def test_nesting_past_libyaml_limit_is_a_located_problem(tmp_path: Path) -> None:
    path = tmp_path / "deeper.yaml"
    path.write_text("x: " + "[" * 20_000 + "]" * 20_000 + "\n", encoding="utf-8")
    (problem,) = refused(path).problems
    assert problem.code == "yaml" and "nesting depth" in problem.message


@pytest.mark.parametrize(("snippet", "words"), [
    ("description: {[1, 2]: x}\n", "mapping key must be a plain value"),
    ("description: !!python/object:os.system x\n", "malformed YAML"),
    ("description: !custom x\n", "malformed YAML"),
    ("description: " + "9" * 5000 + "\n", "cannot read the value"),
])
def test_values_the_loader_cannot_build_are_located_problems(tmp_path: Path, snippet: str, words: str) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(HEAD + snippet + NODES, encoding="utf-8")
    (problem,) = refused(path).problems
    assert words in problem.message and problem.line == 8


def test_label_yes_read_as_a_boolean_gets_a_hint(tmp_path: Path) -> None:
    text = HEAD + """\
nodes:
  - id: pick
    kind: router
    llm: {model: local}
    inputs: [question]
    routes:
      - {label: yes, to: a}
      - {label: "no", to: END}
  - id: a
    kind: agent
    inputs: [question]
    outputs: [answer]
"""
    path = tmp_path / "yes.yaml"
    path.write_text(text, encoding="utf-8")
    problems = refused(path).problems
    (problem,) = [p for p in problems if p.field and "label" in p.field]
    assert problem.line == line_of(text, "label: yes")
    assert problem.hint is not None and "boolean" in problem.hint and "'yes'" in problem.hint


def test_unquoted_type_in_a_flow_mapping_gets_a_hint(tmp_path: Path) -> None:
    text = HEAD + """\
nodes:
  - id: a
    kind: agent
    inputs: [question]
    outputs: {numbers: list[int]}
"""
    path = tmp_path / "flow.yaml"
    path.write_text(text, encoding="utf-8")
    (problem,) = refused(path).problems
    assert problem.line == line_of(text, "outputs: {numbers")
    assert problem.hint is not None and "'list[int]'" in problem.hint


@pytest.mark.timeout(20)
def test_an_endless_env_file_is_read_only_up_to_its_limit() -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    with pytest.raises(SpecError) as info:
        load_env_spec("/dev/zero")
    assert info.value.problems[0].code == "too_large"


def test_settings_with_models_that_are_not_a_mapping_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "agentforge.yaml").write_text("models: [a, b]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'models' must be a mapping"):
        load_settings(cwd=tmp_path)
