"""`agentforge evolve | versions | export | report` from the command line, with the scripted executor:
a run's output, and a clear message with exit code 2 for every kind of bad input, nothing recorded lost."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentforge.cli import app
from agentforge.llm.scripted import register_script, unregister_script
from agentforge.workflow.loader import load_spec
from tests.unit.sample_evolve import SEED_WORKFLOW, executor

runner = CliRunner()

ENV = """\
version: 1
kind: env
name: sums
source: {type: jsonl, path: sums.jsonl, input_fields: [question], answer_field: answer}
metric: exact_match
splits: {train: 0.4, val: 0.3, test: 0.3}
seed: 0
"""


@pytest.fixture
def project(tmp_path: Path) -> Any:
    name = "cli-evolve"
    register_script(name, executor())
    rows = [json.dumps({"question": f"what is {k} + {k + 1}?", "answer": str(2 * k + 1)}) for k in range(40)]
    (tmp_path / "sums.jsonl").write_text("\n".join(rows) + "\n")
    (tmp_path / "sums.yaml").write_text(ENV)
    (tmp_path / "seed.yaml").write_text(SEED_WORKFLOW)
    yield tmp_path, f"scripted/{name}"
    unregister_script(name)


def _evolve(tmp_path: Path, model: str, *extra: str) -> Any:
    return runner.invoke(app, ["evolve", str(tmp_path / "seed.yaml"), "--env", str(tmp_path / "sums.yaml"),
                               "--model", model, "--optimizer-model", model, "--runs-dir", str(tmp_path / "runs"),
                               "--plain", *extra])


def test_evolve_prints_seed_vs_best_on_test_and_the_report(project: Any) -> None:
    tmp_path, model = project
    result = _evolve(tmp_path, model, "--optimizer", "reflect", "--budget", "generations=1", "--minibatch", "4")
    assert result.exit_code == 0, result.output
    assert "held-out test tasks" in result.stdout and "report: " in result.stdout
    folder = next((tmp_path / "runs").iterdir())
    assert (folder / "report.html").is_file() and (folder / "best.yaml").is_file()

    listed = runner.invoke(app, ["versions", str(folder)])
    assert listed.exit_code == 0 and "seed" in listed.stdout
    exported = runner.invoke(app, ["export", str(folder), "--version", "seed", "-O", str(tmp_path / "seed2.yaml")])
    assert exported.exit_code == 0
    assert load_spec(tmp_path / "seed2.yaml").hash == load_spec(tmp_path / "seed.yaml").hash


@pytest.mark.parametrize("extra, message", [
    (("--optimizer", "reflekt"), "unknown optimizer 'reflekt' (did you mean 'reflect'?)"),
    (("--budget", "calls=5"), "cannot evaluate even one candidate"),
    (("--budget", "calls=lots"), "is not a number"),
    (("--level", "2"), None),
])
def test_bad_evolve_input_is_a_clear_error_with_exit_2(project: Any, extra: tuple[str, ...],
                                                       message: str | None) -> None:
    tmp_path, model = project
    result = _evolve(tmp_path, model, *extra)
    assert result.exit_code == 2, result.output
    if message:
        assert message in " ".join(result.output.split())


def test_an_environment_with_too_few_tasks_is_refused_before_a_run_folder_exists(project: Any) -> None:
    tmp_path, model = project
    (tmp_path / "sums.jsonl").write_text(json.dumps({"question": "what is 1 + 2?", "answer": "3"}) + "\n")
    result = _evolve(tmp_path, model)
    assert result.exit_code == 2 and "too few tasks" in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_memory_server_that_is_down_is_refused_before_a_run_folder_exists(project: Any) -> None:
    tmp_path, model = project
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    (tmp_path / "down.yaml").write_text(f"version: 1\nkind: memory\nbackend: server\nhost: 127.0.0.1\nport: {port}\n"
                                        "embedder: hashing\n")
    result = _evolve(tmp_path, model, "--memory", str(tmp_path / "down.yaml"))
    assert result.exit_code == 2, result.output
    assert f"127.0.0.1:{port}" in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_resuming_a_corrupt_run_folder_is_refused_and_leaves_it_as_it_was(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "evolve-x"
    folder.mkdir(parents=True)
    (folder / "run.sqlite").write_bytes(b"\0garbage" * 64)
    before = hashlib.sha256((folder / "run.sqlite").read_bytes()).hexdigest()
    result = runner.invoke(app, ["evolve", "--resume", str(folder)])
    assert result.exit_code == 2 and "corrupt" in result.output
    assert hashlib.sha256((folder / "run.sqlite").read_bytes()).hexdigest() == before
    for command in (["versions", str(folder)], ["report", str(folder)], ["export", str(folder)]):
        assert runner.invoke(app, command).exit_code == 2


def test_evolve_without_a_workflow_or_resume_says_what_to_give() -> None:
    result = runner.invoke(app, ["evolve"])
    assert result.exit_code == 2 and "--resume" in result.output
