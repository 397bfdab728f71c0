"""Checkpointing: a failed run resumes from its last finished step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentforge.errors import LLMError, NodeError, RunNotFound, ToolError
from agentforge.llm.scripted import ScriptedModel, register_script
from agentforge.runtime.store import RunStore
from agentforge.runtime.workflow import Workflow
from agentforge.tools import ToolRegistry
from tests.conftest import WORKFLOWS
from tests.unit.sample_workflows import FAN


def test_failed_run_resumes_without_rerunning_finished_nodes(scripted: Any) -> None:
    model, script = scripted
    script.on("FOR:", LLMError("judge backend down")).on("Argue FOR", "yes").on("Argue AGAINST", "no")
    wf = Workflow.from_yaml(WORKFLOWS / "debate.yaml")
    with pytest.raises(NodeError, match="judge backend down") as info:
        wf.run({"motion": "tea beats coffee"}, model=model)
    run_id = info.value.fields["run_id"]
    assert len(script.calls) == 3

    name = model.split("/", 1)[1]
    fixed = register_script(name, ScriptedModel()
                            .on("FOR:", json.dumps({"winner": "con", "verdict": "clearer"}))
                            .on("Argue", AssertionError("finished debaters must not run again")))
    result = Workflow.resume(run_id)
    assert result.outputs == {"winner": "con", "verdict": "clearer"}
    assert len(fixed.calls) == 1
    assert result.trace.resumed
    assert sorted(n.node for n in result.trace.nodes) == ["con", "judge", "pro"]
    saved = json.loads(result.trace_path.read_text())  # type: ignore[union-attr]
    assert saved["status"] == "succeeded"


def test_resuming_a_finished_run_returns_its_outputs_without_calls(scripted: Any) -> None:
    model, script = scripted
    script.on("FOR:", json.dumps({"winner": "pro", "verdict": "v"})).on("Argue", "x")
    first = Workflow.from_yaml(WORKFLOWS / "debate.yaml").run({"motion": "m"}, model=model)
    calls = len(script.calls)
    again = Workflow.resume(first.run_id)
    assert again.outputs == first.outputs and len(script.calls) == calls


def test_resuming_an_unknown_run_names_it() -> None:
    with pytest.raises(RunNotFound, match="no run 'nope'"):
        Workflow.resume("nope")


def test_a_node_finished_beside_a_failed_one_is_kept_once_when_the_run_resumes(tmp_path: Path) -> None:
    (tmp_path / "fan.yaml").write_text(FAN, encoding="utf-8")
    calls: list[str] = []
    broken = {"xac"}

    def step(text: str) -> str:
        """Return the text, or fail on a broken one."""
        calls.append(text)
        if text in broken:
            raise ToolError(f"step failed on {text}")
        return text

    runs = RunStore(tmp_path / "runs")
    wf = Workflow.from_yaml(tmp_path / "fan.yaml", tools=ToolRegistry([step]), store=runs)
    with pytest.raises(NodeError) as info:
        wf.run({"word": "x"})
    run_id = info.value.fields["run_id"]
    first = json.loads(runs.trace_path(run_id).read_text(encoding="utf-8"))
    assert sorted((n["node"], n["error"] is None) for n in first["nodes"]) == [("a", True), ("b", True),
                                                                               ("c", False)]
    runs.trace_path(run_id).unlink()  # the records must come from the checkpoint, not the old trace.json
    broken.clear()
    calls.clear()
    result = Workflow.resume(run_id, tools=ToolRegistry([step]), store=runs)
    assert result.outputs == {"d": "xabxacd"}
    assert calls == ["xac", "xabxacd"]
    assert [n.node for n in result.trace.nodes][:2] == ["a", "b"]
    assert sorted(n.node for n in result.trace.nodes) == ["a", "b", "c", "d"]
    assert all(n.error is None for n in result.trace.nodes)
