"""`agentforge eval` and `agentforge env` from the command line."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from agentforge.cli import app
from tests.conftest import REPO

runner = CliRunner()

CAPITALS_WORKFLOW = """
version: 1
name: capitals
inputs: {question: str}
outputs: {answer: str}
nodes:
  - {id: ask, kind: agent, prompt: "{question}", inputs: [question], outputs: [answer]}
"""


def write_workflow(tmp: Path) -> Path:
    path = tmp / "capitals.yaml"
    path.write_text(textwrap.dedent(CAPITALS_WORKFLOW))
    return path


def test_eval_prints_json_report_with_scores_and_cache_counts(tmp_path: Path, scripted: Any) -> None:
    model, script = scripted
    script.default = "Paris"
    args = ["eval", str(write_workflow(tmp_path)), "--env", str(REPO / "envs" / "capitals.yaml"),
            "--split", "val", "--limit", "5", "--model", model, "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["summary"]["tasks"] == 5 and report["summary"]["errors"] == 0
    assert 0.0 <= report["summary"]["mean_score"] <= 1.0
    assert report["summary"]["cached_calls"] == 0
    again = json.loads(runner.invoke(app, args).stdout)
    assert again["summary"]["cached_calls"] == again["summary"]["llm_calls"] == 5
    assert Path(report["traces_path"]).is_file()


def test_eval_summary_table_and_bad_inputs(tmp_path: Path, scripted: Any) -> None:
    model, script = scripted
    script.default = "Paris"
    wf = str(write_workflow(tmp_path))
    ok = runner.invoke(app, ["eval", wf, "--env", "capitals", "--limit", "3", "--model", model])
    assert ok.exit_code == 0 and "mean score" in ok.output and "95% CI" in ok.output
    unknown_env = runner.invoke(app, ["eval", wf, "--env", "capitols", "--model", model])
    assert unknown_env.exit_code == 2 and "capitals" in unknown_env.output  # a did-you-mean
    bad_split = runner.invoke(app, ["eval", wf, "--env", "capitals", "--split", "dev"])
    assert bad_split.exit_code == 2 and "train, val or test" in bad_split.output
    bad_executor = runner.invoke(app, ["eval", wf, "--env", "capitals", "--executor", "spark"])
    assert bad_executor.exit_code == 2


def test_eval_exits_1_when_every_task_fails(tmp_path: Path, scripted: Any) -> None:
    from agentforge.errors import LLMError

    model, script = scripted
    script.default = LLMError("down")
    result = runner.invoke(app, ["eval", str(write_workflow(tmp_path)), "--env", "capitals", "--limit", "2",
                                 "--model", model])
    assert result.exit_code == 1 and "down" in result.output


def test_env_list_shows_shipped_definitions_and_builtins() -> None:
    result = runner.invoke(app, ["env", "list"])
    assert result.exit_code == 0
    for name in ("arithmetic", "capitals", "wordle", "maze", "sql", "todo", "textcraft"):
        assert name in result.output


def test_env_serve_runs_a_real_server_on_loopback() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli = Path(sys.executable).parent / "agentforge"
    proc = subprocess.Popen([str(cli), "env", "serve", "wordle", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/info", timeout=2) as resp:
                    info = json.loads(resp.read())
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        assert info["name"] == "wordle" and info["multi_turn"] is True
        request = urllib.request.Request(base + "/create", data=b"{}", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert "id" in json.loads(resp.read())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    proc.stderr.close()


def test_env_serve_of_an_unknown_environment_exits_2() -> None:
    result = runner.invoke(app, ["env", "serve", "wordel"])
    assert result.exit_code == 2 and "wordle" in result.output
