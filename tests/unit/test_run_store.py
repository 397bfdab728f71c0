"""The Workflow split: a runner that returns failures as outcomes, and a run store another owner can root."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agentforge.config import get_settings
from agentforge.errors import LLMError, NodeError, RunNotFound
from agentforge.llm.scripted import ScriptedModel, register_script
from agentforge.runtime.runner import Runner
from agentforge.runtime.store import RunRecord, RunStore
from agentforge.runtime.trace import Trace
from agentforge.runtime.workflow import Workflow
from agentforge.workflow.loader import spec_from_text
from tests.conftest import WORKFLOWS
from tests.unit.sample_workflows import QA


def qa() -> Workflow:
    return Workflow(spec_from_text(textwrap.dedent(QA)))


def runs_written() -> list[str]:
    root = get_settings().runs_dir
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


async def test_the_runner_returns_a_failure_with_its_trace_instead_of_raising(scripted: Any) -> None:
    model, script = scripted
    script.default = LLMError("backend down")
    wf = qa()
    runner = Runner(wf.spec, wf.compiled, wf.gateway, wf.tools)
    trace = Trace(run_id="r1", workflow=wf.spec.name, workflow_hash=wf.spec.hash)
    outcome = await runner.ainvoke({"question": "why?"}, trace, model=model)
    assert isinstance(outcome.error, NodeError) and "backend down" in str(outcome.error)
    assert outcome.error.fields["run_id"] == "r1" and outcome.outputs == {}
    assert outcome.trace is trace and trace.status == "failed" and trace.nodes[0].error
    assert runs_written() == []


async def test_execute_runs_in_memory_and_returns_failures(scripted: Any) -> None:
    model, script = scripted
    script.default = "because"
    wf = qa()
    ok = await wf.aexecute({"question": "why?"}, model=model)
    assert ok.ok and ok.outputs == {"answer": "because"} and ok.trace.status == "succeeded" and ok.trace_path is None
    script.default = LLMError("backend down")
    failed = await wf.aexecute({"question": "how?"}, model=model)
    assert not failed.ok and isinstance(failed.exception, NodeError) and failed.trace.status == "failed"
    assert runs_written() == []


def test_a_store_with_its_own_root_holds_the_run_and_resumes_it(scripted: Any, tmp_path: Path) -> None:
    model, script = scripted
    script.on("FOR:", LLMError("judge backend down")).on("Argue FOR", "yes").on("Argue AGAINST", "no")
    store = RunStore(tmp_path / "loop-runs")
    wf = Workflow.from_yaml(WORKFLOWS / "debate.yaml", store=store)
    with pytest.raises(NodeError) as info:
        wf.run({"motion": "tea beats coffee"}, model=model)
    run_id = info.value.fields["run_id"]
    assert runs_written() == []  # nothing under the settings' runs folder
    record = store.load_record(run_id)
    assert (record.status, record.workflow, record.inputs, record.model) == ("failed", "debate",
                                                                              {"motion": "tea beats coffee"}, model)
    assert store.checkpoints_path.is_file() and store.load_trace(run_id) is not None
    with pytest.raises(RunNotFound):
        Workflow.resume(run_id)  # the default store does not know it
    name = model.split("/", 1)[1]
    register_script(name, ScriptedModel().on("FOR:", json.dumps({"winner": "con", "verdict": "clearer"}))
                    .on("Argue", AssertionError("finished debaters must not run again")))
    result = Workflow.resume(run_id, store=store)
    assert result.outputs == {"winner": "con", "verdict": "clearer"}
    assert result.trace_path == store.trace_path(run_id) and store.load_record(run_id).status == "succeeded"


def test_run_json_keeps_its_shape(scripted: Any) -> None:
    model, script = scripted
    script.default = "because"
    result = qa().run({"question": "why?"}, model=model)
    data = json.loads((get_settings().runs_dir / result.run_id / "run.json").read_text())
    assert set(data) == {"run_id", "workflow", "workflow_hash", "workflow_file", "spec", "inputs", "model", "status",
                         "error"}
    assert RunRecord.model_validate(data).status == "succeeded"


def test_an_unknown_run_lists_recent_ones(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs-here")
    spec: dict[str, Any] = {"version": 1, "name": "x"}
    for run_id in ("20260101-000000-aaaaaa", "20260102-000000-bbbbbb"):
        store.save_record(RunRecord(run_id=run_id, workflow="x", workflow_hash="h", spec=spec))
    with pytest.raises(RunNotFound, match="recent: 20260101-000000-aaaaaa, 20260102-000000-bbbbbb"):
        store.load_record("nope")
    assert RunStore(tmp_path / "empty").recent() == []
