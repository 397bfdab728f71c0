"""`agentforge runs` lists saved runs newest first; `agentforge runs show ID` shows one, node by node."""

from __future__ import annotations

import contextlib
import json
import os
import textwrap
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from agentforge.errors import AgentforgeError, LLMError
from agentforge.runtime.workflow import Workflow
from agentforge.workflow.loader import spec_from_text

CHAIN = """
version: 1
name: two-steps
inputs: {question: str}
outputs: {answer: str}
nodes:
  - {id: draft, kind: agent, instruction: Draft., prompt: "Q: {question}", inputs: [question], outputs: [notes]}
  - {id: final, kind: agent, instruction: Finalise., prompt: "N: {notes}", inputs: [notes], outputs: [answer]}
edges:
  - {from: draft, to: final}
"""


def invoke(*args: str) -> Any:
    from agentforge.cli import app

    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def make_runs(script: Any, model: str) -> dict[str, str]:
    """Three runs with ids from three different days: one succeeded, one failed, the newest succeeded."""
    script.on("Q: ", "notes").on("N: notes", "the answer")
    wf = Workflow(spec_from_text(textwrap.dedent(CHAIN)))
    ids = {"old": "20250101-090000-aaaaaa", "failed": "20250102-090000-bbbbbb", "new": "20250103-090000-cccccc"}
    wf.run({"question": "a"}, model=model, run_id=ids["old"])
    script.rules.clear()
    script.default = LLMError("provider down")
    with contextlib.suppress(AgentforgeError):  # the run fails; its record and trace stay
        wf.run({"question": "b"}, model=model, run_id=ids["failed"])
    script.default = None
    script.on("Q: ", "notes").on("N: notes", "the answer")
    wf.run({"question": "c"}, model=model, run_id=ids["new"])
    return ids


def test_runs_lists_newest_first_with_status_and_latency(scripted: Any, tmp_path: Path) -> None:
    model, script = scripted
    ids = make_runs(script, model)
    result = invoke("runs")
    assert result.exit_code == 0, result.output
    out = result.stdout
    positions = [out.index(ids[k]) for k in ("new", "failed", "old")]
    assert positions == sorted(positions)
    assert "two-steps" in out and "succeeded" in out and "failed" in out
    assert "2025-01-03 09:00:00" in out  # started, from the id's time

    limited = invoke("runs", "--limit", "1")
    assert ids["new"] in limited.stdout and ids["failed"] not in limited.stdout and ids["old"] not in limited.stdout

    data = json.loads(invoke("runs", "--json").stdout)
    assert [r["run_id"] for r in data] == [ids["new"], ids["failed"], ids["old"]]
    failed = data[1]
    assert failed["status"] == "failed" and "provider down" in failed["error"]
    assert failed["workflow"] == "two-steps" and failed["started"].startswith("2025-01-02T09:00:00")
    assert all(isinstance(r["latency_s"], float) for r in data)


def test_runs_show_prints_the_record_and_a_table_per_node(scripted: Any) -> None:
    model, script = scripted
    ids = make_runs(script, model)
    result = invoke("runs", "show", ids["new"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for fragment in ("two-steps", "succeeded", "draft", "final", "the answer", "trace.json", model):
        assert fragment in out, fragment
    failed = invoke("runs", "show", ids["failed"])
    assert failed.exit_code == 0
    assert "provider down" in failed.stdout and f"agentforge run --resume {ids['failed']}" in failed.stdout

    data = json.loads(invoke("runs", "show", ids["new"], "--json").stdout)
    assert data["run"]["run_id"] == ids["new"] and data["run"]["status"] == "succeeded"
    assert data["run"]["inputs"] == {"question": "c"} and data["outputs"] == {"answer": "the answer"}
    assert [n["node"] for n in data["nodes"]] == ["draft", "final"]
    assert data["nodes"][0]["calls"] == 1 and data["summary"]["llm_calls"] == 2
    assert "spec" not in data["run"]  # the full spec is in run.json; the summary stays readable


def test_unknown_run_id_exits_2_naming_recent_runs(scripted: Any) -> None:
    model, script = scripted
    ids = make_runs(script, model)
    result = invoke("runs", "show", "20250104-000000-nosuch")
    assert result.exit_code == 2
    assert "no run '20250104-000000-nosuch'" in result.stderr
    assert all(run_id in result.stderr for run_id in ids.values())
    for bad in ("../etc", "a/b", ".."):
        refused = invoke("runs", "show", bad)
        assert refused.exit_code == 2 and "no run" in refused.stderr


def test_no_runs_yet_says_where_it_looked(tmp_path: Path) -> None:
    result = invoke("runs")
    assert result.exit_code == 0
    assert "no runs" in result.stdout and str(tmp_path / "runs") in result.stdout
    assert json.loads(invoke("runs", "--json").stdout) == []
    bad_limit = invoke("runs", "--limit", "0")
    assert bad_limit.exit_code == 2


def test_a_run_without_trace_and_a_corrupt_record_are_listed_not_fatal(scripted: Any, tmp_path: Path) -> None:
    model, script = scripted
    make_runs(script, model)
    runs = Path(os.environ["AGENTFORGE_RUNS"])
    running = runs / "20250105-090000-dddddd"
    running.mkdir()
    (running / "run.json").write_text(json.dumps({"run_id": running.name, "workflow": "two-steps",
                                                  "workflow_hash": "x", "spec": {}, "status": "running"}))
    broken = runs / "20250106-090000-eeeeee"
    broken.mkdir()
    (broken / "run.json").write_text('{"run_id": "20250106-09')  # killed mid-write
    result = invoke("runs")
    assert result.exit_code == 0, result.output
    assert "running" in result.stdout and "unreadable" in result.stdout
    data = json.loads(invoke("runs", "--json").stdout)
    assert data[0]["run_id"] == broken.name and data[0]["status"] == "unreadable"
    assert data[1]["run_id"] == running.name and data[1]["latency_s"] is None
    shown = invoke("runs", "show", running.name)
    assert shown.exit_code == 0 and "no trace.json" in shown.stdout
    corrupt = invoke("runs", "show", broken.name)
    assert corrupt.exit_code == 2 and "run.json" in corrupt.stderr
    (running / "trace.json").write_text('{"run_id": "x", "nodes": [')  # killed while saving its trace
    cut = invoke("runs", "show", running.name)
    assert cut.exit_code == 0 and "trace.json cannot be read" in cut.stdout and "two-steps" in cut.stdout
