"""`agentforge eval ... > report.txt` keeps the report: results go to stdout, progress to stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from agentforge.cli import app
from agentforge.errors import LLMError
from tests.conftest import REPO

WORKFLOW = """
version: 1
name: capitals
inputs: {question: str}
outputs: {answer: str}
nodes:
  - {id: ask, kind: agent, prompt: "{question}", inputs: [question], outputs: [answer]}
"""


def write_workflow(tmp: Path) -> Path:
    path = tmp / "capitals.yaml"
    path.write_text(textwrap.dedent(WORKFLOW))
    return path


def test_report_redirected_to_a_file_holds_the_summary(tmp_path: Path) -> None:
    cli = Path(sys.executable).parent / "agentforge"
    report = tmp_path / "report.txt"
    with report.open("w") as stdout:
        proc = subprocess.run([str(cli), "eval", str(write_workflow(tmp_path)), "--env",
                               str(REPO / "envs" / "capitals.yaml"), "--limit", "3", "--model", "scripted/echo"],
                              stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120, cwd=tmp_path,
                              env={**os.environ, "AGENTFORGE_RUNS": str(tmp_path / "runs"),
                                   "AGENTFORGE_HOME": str(tmp_path / "home")})
    assert proc.returncode == 0, proc.stderr
    text = report.read_text()
    assert "mean score" in text and "95% CI" in text and "tasks" in text
    assert "report.json" in text  # where the full report was written
    assert "mean score" not in proc.stderr  # stderr holds progress only
    assert "Traceback" not in proc.stderr


def test_cli_runner_separates_results_from_progress(tmp_path: Path, scripted: Any) -> None:
    model, script = scripted
    script.default = "Paris"
    result = CliRunner().invoke(app, ["eval", str(write_workflow(tmp_path)), "--env", "capitals", "--limit", "3",
                                      "--model", model])
    assert result.exit_code == 0, result.output
    assert "mean score" in result.stdout and "LLM calls" in result.stdout
    assert "mean score" not in result.stderr


def test_failed_tasks_are_listed_with_the_report_on_stdout(tmp_path: Path, scripted: Any) -> None:
    model, script = scripted
    script.default = LLMError("provider down")
    result = CliRunner().invoke(app, ["eval", str(write_workflow(tmp_path)), "--env", "capitals", "--limit", "2",
                                      "--model", model])
    assert result.exit_code == 1
    assert "provider down" in result.stdout and "errors" in result.stdout


def test_json_report_is_the_only_thing_on_stdout(tmp_path: Path, scripted: Any) -> None:
    model, script = scripted
    script.default = "Paris"
    result = CliRunner().invoke(app, ["eval", str(write_workflow(tmp_path)), "--env", "capitals", "--limit", "2",
                                      "--model", model, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"]["tasks"] == 2
