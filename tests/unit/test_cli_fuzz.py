"""Hostile input as a property of the whole CLI: generated files and argument lists at ``validate``,
``run``, ``eval`` and ``graph``, and generated JSON bodies at the env server.

Every example must end with a clean exit code (0, 1 or 2; 4xx, never 5xx, at the server), no
traceback, and within a bounded time (hypothesis' deadline per example, pytest-timeout per test).
Runs and evaluations that the generator happens to make valid use the scripted ``echo`` model, so no
real model ever loads. The whole file is budgeted at about a minute.
"""

from __future__ import annotations

import json
import string
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from typer.testing import CliRunner, Result

from agentforge.cli import app
from agentforge.envs.builtin import builtin_class
from agentforge.envs.remote.server import create_app

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "workflows" / "cot_qa.yaml"
BASE = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
ECHO = ["--model", "scripted/echo"]  # last on the line, so it wins over any generated --model

FUZZ = settings(max_examples=150, deadline=timedelta(seconds=10), database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


def check(result: Result, allowed: tuple[int, ...] = (0, 1, 2)) -> None:
    assert result.exit_code in allowed, (result.exit_code, result.output[-2000:], repr(result.exception))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output, result.output[-2000:]


# -- generated files ---------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**30, max_value=10**60),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["yes", "no", "on", "~", "END", "START", "__start__", "list[int]", "{x}", "{{", "*a",
                     "&a", "!!python/object:os.system", "a" * 300, "\u202e\u0000\ufeff", "ℌ𝔢𝔩𝔩𝔬", "1e999"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)


@st.composite
def mutated_workflows(draw: st.DrawFn) -> str:
    """A shipped workflow with one value somewhere replaced by a generated one."""
    data: Any = json.loads(json.dumps(BASE))
    cursor = data
    for _ in range(draw(st.integers(0, 4))):
        keys = list(cursor) if isinstance(cursor, dict) else list(range(len(cursor)))
        if not keys:
            break
        key = draw(st.sampled_from(keys))
        if not isinstance(cursor[key], dict | list) or draw(st.booleans()):
            cursor[key] = draw(values)
            break
        cursor = cursor[key]
    else:
        if isinstance(cursor, dict):
            cursor[draw(st.text(max_size=10))] = draw(values)
    return yaml.safe_dump(data, allow_unicode=draw(st.booleans()))


@st.composite
def alias_bombs(draw: st.DrawFn) -> str:
    levels, width = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    lines = ["version: 1", "kind: workflow", "name: bomb", "a0: &a0 [x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\nnodes: [{id: n, kind: agent}]\n"


@st.composite
def deep_nesting(draw: st.DrawFn) -> str:
    depth = draw(st.integers(1, 3000))
    if draw(st.booleans()):
        return "x: " + "[" * depth + "]" * depth + "\n"
    return "".join("  " * i + f"k{i}:\n" for i in range(min(depth, 400))) + "  " * min(depth, 400) + "v\n"


# YAML-shaped noise: the punctuation, anchors, tags and keys a parser and the loader have to get through.
fragments = st.lists(st.sampled_from([
    "{", "}", "[", "]", ": ", ", ", "- ", "\n", "  ", "&a ", "*a", "&b ", "*b", "!!str ", "!!binary ", "!!set ",
    "!!python/name:os.system ", "!x ", "? ", "'", '"', "# c", "|\n", ">\n", "<<: *a", "---\n", "...\n", "%YAML 1.1\n",
    "version: 1\n", "kind: workflow\n", "name: n\n", "nodes:\n", "- id: a\n", "kind: agent\n", "inputs: [q]\n",
    "outputs: {numbers: list[int]}\n", "edges:\n", "- {from: a, to: a}\n", "label: yes\n", "2001-12-14", "0x1F",
    "1e9999", "-.inf", ".nan", "~", "null", "9" * 5000, "\t", "\ufeff", "\x85",
]), max_size=40).map("".join)

hostile_texts = st.one_of(
    fragments, mutated_workflows(), alias_bombs(), deep_nesting(), st.text(max_size=300),
    st.just(WORKFLOW.read_text(encoding="utf-8")), values.map(lambda v: yaml.safe_dump(v)),
    st.integers(1, 20_000).map(lambda n: "x: " + "9" * n + "\n"),
)
hostile_files = st.one_of(hostile_texts.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=300))


def write(folder: str, data: bytes) -> str:
    path = Path(folder) / "wf.yaml"
    path.write_bytes(data)
    return str(path)


@pytest.mark.timeout(300)
@FUZZ
@given(data=hostile_files)
def test_validate_and_graph_answer_any_file_cleanly(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = write(folder, data)
        check(CliRunner().invoke(app, ["validate", path]), (0, 2))
        check(CliRunner().invoke(app, ["graph", path]), (0, 2))


@pytest.mark.timeout(300)
@settings(FUZZ, max_examples=25)
@given(data=hostile_files)
def test_run_answers_any_file_cleanly(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        check(CliRunner().invoke(app, ["run", write(folder, data), "-i", "question=hi", *ECHO]))


@pytest.mark.timeout(300)
@settings(FUZZ, max_examples=10)
@given(data=hostile_files)
def test_eval_answers_any_workflow_file_cleanly(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        check(CliRunner().invoke(app, ["eval", write(folder, data), "--env", "capitals", "--limit", "1", *ECHO]))


# -- generated argument lists ----------------------------------------------------------------------

tokens = st.one_of(
    st.sampled_from(["--limit", "-n", "--concurrency", "-c", "--workers", "--split", "--seed", "--json", "--env",
                     "-e", "--executor", "--format", "-f", "--input", "-i", "--input-json", "--resume", "--model",
                     "--log-level", "--help", "--", "-", "0", "-1", "1", "2", "99999999999999999999999", "1e9",
                     "nan", "", "val", "test", "train", "asyncio", "capitals", "wordle", "nosuchenv", "http://x",
                     "mermaid", "svg", "q=1", "=", "question=hi", "local", "nosuch/x", "../../etc/passwd",
                     "/dev/null", str(WORKFLOW), str(REPO / "workflows"), "ℌ", "\x00"]),
    st.text(alphabet=string.printable, max_size=12),
)


@pytest.mark.timeout(300)
@settings(FUZZ, max_examples=120)
@given(command=st.sampled_from(["validate", "run", "eval", "graph"]), args=st.lists(tokens, max_size=8),
       prefix=st.lists(st.sampled_from(["--log-level", "debug", "verbose", "--log-json", "--version"]), max_size=2))
def test_any_argument_list_is_answered_cleanly(command: str, args: list[str], prefix: list[str]) -> None:
    if "\x00" in "".join(args):
        args = [a.replace("\x00", "") for a in args]
    tail = ECHO if command in ("run", "eval") else []
    check(CliRunner().invoke(app, [*prefix, command, *args, *tail]))


# -- a couple of real processes --------------------------------------------------------------------


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentforge.cli", *args], capture_output=True, text=True,
                          timeout=120, check=False, cwd=cwd)


@pytest.mark.timeout(300)
def test_real_processes_refuse_hostile_input_cleanly(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    bomb.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cases = ((["validate", str(bomb)], 2), (["eval", str(WORKFLOW), "--env", "capitals", "--limit", "-1"], 2),
             (["--log-level", "verbose", "validate", str(WORKFLOW)], 2), (["--version"], 0))
    for args, code in cases:
        done = cli(*args, cwd=tmp_path)
        assert done.returncode == code, (args, done.returncode, done.stderr[-2000:])
        assert "Traceback" not in done.stdout + done.stderr


# -- the env server ------------------------------------------------------------------------------------

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=15)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({}, optional={"id": json_values, "action": json_values, "data_idx": json_values,
                                        "task_id": json_values}).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.integers(1, 20_000).map(lambda n: ("[" * n + "]" * n).encode()),
    st.integers(4300, 20_000).map(lambda n: ('{"id": ' + "1" * n + "}").encode()),
)


@pytest.fixture(scope="module")
def server() -> Any:
    with TestClient(create_app(builtin_class("wordle")())) as client:
        yield client


@pytest.mark.timeout(300)
@settings(FUZZ, max_examples=150)
@given(path=st.sampled_from(["/create", "/reset", "/step", "/close"]), body=bodies)
def test_env_server_answers_any_body_with_4xx_not_5xx(server: TestClient, path: str, body: bytes) -> None:
    sid = server.post("/create", content=b"{}").json()["id"]
    if body.startswith(b"{") and b'"id"' not in body[:8]:
        try:
            data = json.loads(body)
            data.setdefault("id", sid)
            body = json.dumps(data).encode()
        except ValueError:
            pass
    response = server.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code < 500, (path, body[:200], response.status_code, response.text[:500])
    server.post("/close", json={"id": sid})


def test_env_server_refuses_a_12000_level_body_with_400(server: TestClient) -> None:
    body = '{"id": 0, "action": ' + "[" * 12_000 + "]" * 12_000 + "}"
    response = server.post("/step", content=body.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text[:300]
    assert "nests too deeply" in response.json()["error"]
