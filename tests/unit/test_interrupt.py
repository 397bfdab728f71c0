"""Interruption in-process: a cancelled run is saved as ``interrupted`` with the nodes that finished, and
``--resume`` continues it, or restarts it from its recorded inputs when it stopped before its first checkpoint."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentforge.cli import app
from agentforge.errors import RunNotFound
from agentforge.runtime.store import RunStore
from agentforge.runtime.workflow import Workflow, new_run_id
from agentforge.tools import ToolRegistry
from tests.unit.sample_workflows import FAN

CHAIN = """\
version: 1
kind: workflow
name: chain
inputs: {word: str}
outputs: {c: str}
nodes:
  - {id: a, kind: tool, tool: step, args: {text: "{word}a"}, inputs: [word], outputs: [a]}
  - {id: b, kind: tool, tool: step, args: {text: "{a}b"}, inputs: [a], outputs: [b]}
  - {id: c, kind: tool, tool: step, args: {text: "{b}c"}, inputs: [b], outputs: [c]}
edges:
  - {from: a, to: b}
  - {from: b, to: c}
"""


class Steps:
    """A ``step`` tool that records each call and can hang on one text until cancelled."""

    def __init__(self, hang_on: str | None = None) -> None:
        self.calls: list[str] = []
        self.hang_on = hang_on
        self.hanging = asyncio.Event()

    def registry(self) -> ToolRegistry:
        async def step(text: str) -> str:
            """Return the text."""
            self.calls.append(text)
            if text == self.hang_on:
                self.hanging.set()
                await asyncio.sleep(3600)
            return text

        return ToolRegistry([step])


def chain_file() -> Path:
    path = Path("chain.yaml")
    path.write_text(CHAIN, encoding="utf-8")
    return path


def store() -> RunStore:
    return RunStore(Path.cwd() / "runs")


async def interrupt_at_b(run_id: str) -> Steps:
    steps = Steps(hang_on="xab")
    wf = Workflow.from_yaml(chain_file(), tools=steps.registry(), store=store())
    task = asyncio.ensure_future(wf.arun({"word": "x"}, run_id=run_id))
    await asyncio.wait_for(steps.hanging.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return steps


def test_a_cancelled_run_is_saved_as_interrupted_with_the_nodes_that_finished() -> None:
    run_id = new_run_id()
    asyncio.run(interrupt_at_b(run_id))
    record = store().load_record(run_id)
    assert (record.status, record.error) == ("interrupted", "interrupted")
    trace = json.loads(store().trace_path(run_id).read_text(encoding="utf-8"))
    assert trace["status"] == "interrupted"
    assert [(n["node"], n["error"]) for n in trace["nodes"]] == [("a", None), ("b", "interrupted")]


def test_resuming_an_interrupted_run_keeps_the_finished_nodes_and_runs_them_once() -> None:
    run_id = new_run_id()
    asyncio.run(interrupt_at_b(run_id))
    again = Steps()
    result = Workflow.resume(run_id, tools=again.registry(), store=store())
    assert result.outputs == {"c": "xabc"}
    assert again.calls == ["xab", "xabc"]  # a finished before the interruption: not run again
    assert result.trace.resumed
    assert [n.node for n in result.trace.nodes] == ["a", "b", "c"]
    saved = json.loads(store().trace_path(run_id).read_text(encoding="utf-8"))
    assert [n["node"] for n in saved["nodes"]] == ["a", "b", "c"]
    assert store().load_record(run_id).status == "succeeded"


def test_a_run_stopped_before_its_first_checkpoint_restarts_from_its_recorded_inputs() -> None:
    # What a run killed just after writing run.json leaves: a record, no checkpoint, no trace.
    steps = Steps()
    wf = Workflow.from_yaml(chain_file(), tools=steps.registry(), store=store())
    run_id = new_run_id()
    store().save_record(wf._record(run_id, wf.prepare_inputs({"word": "y"}), None, "running"))
    result = Workflow.resume(run_id, tools=steps.registry(), store=store())
    assert result.outputs == {"c": "yabc"}
    assert steps.calls == ["ya", "yab", "yabc"]
    assert store().load_record(run_id).status == "succeeded"


def test_an_unreadable_run_record_says_to_run_again() -> None:
    run_id = new_run_id()
    path = store().run_dir(run_id) / "run.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"run_id": "', encoding="utf-8")  # cut short
    with pytest.raises(RunNotFound, match=r"unreadable.*run the workflow again"):
        store().load_record(run_id)


def test_marking_a_running_record_interrupted_leaves_finished_ones_alone() -> None:
    wf = Workflow.from_yaml(chain_file(), tools=Steps().registry(), store=store())
    running, done = new_run_id(), new_run_id() + "x"
    store().save_record(wf._record(running, {"word": "x"}, None, "running"))
    store().save_record(wf._record(done, {"word": "x"}, None, "succeeded"))
    assert store().mark_interrupted(running) == "interrupted"
    assert store().load_record(running).status == "interrupted"
    assert store().mark_interrupted(done) == "succeeded"
    assert store().mark_interrupted("never-saved") is None


def test_resume_of_an_unreadable_record_exits_2_without_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFORGE_RUNS", str(Path.cwd() / "runs"))
    run_id = new_run_id()
    path = store().run_dir(run_id) / "run.json"
    path.parent.mkdir(parents=True)
    path.write_text("{", encoding="utf-8")
    result = CliRunner().invoke(app, ["run", "--resume", run_id])
    assert result.exit_code == 2, result.output
    assert "unreadable" in result.stderr and "Traceback" not in result.output


def test_a_cancel_at_any_step_of_the_start_leaves_no_thread_posting_to_a_closed_loop(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The SQLite saver opens its connection in a thread; a cancel landing mid-way used to leave that
    # thread posting to a closed loop ("Event loop is closed" tracebacks on Ctrl-C early in a run).
    thread_errors: list[BaseException | None] = []
    monkeypatch.setattr("threading.excepthook", lambda args: thread_errors.append(args.exc_value))
    wf = Workflow.from_yaml(chain_file(), tools=Steps().registry(), store=store())
    wf.compiled  # noqa: B018 (built once here, so the loop below cancels during the run itself)

    async def cancel_after(ticks: int) -> None:
        task = asyncio.ensure_future(wf.arun({"word": "x"}))
        for _ in range(ticks):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    for ticks in range(0, 60, 3):
        asyncio.run(cancel_after(ticks))
    time.sleep(0.2)  # let any stray connection thread fail now, not in a later test
    assert thread_errors == []


def test_a_parallel_node_that_finished_beside_the_interrupted_one_is_not_run_again() -> None:
    Path("fan.yaml").write_text(FAN, encoding="utf-8")
    run_id = new_run_id()
    steps = Steps(hang_on="xac")

    async def interrupt_c() -> None:
        wf = Workflow.from_yaml("fan.yaml", tools=steps.registry(), store=store())
        task = asyncio.ensure_future(wf.arun({"word": "x"}, run_id=run_id))
        await asyncio.wait_for(steps.hanging.wait(), 30)
        while "xab" not in steps.calls:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # b has returned
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(interrupt_c())
    trace = json.loads(store().trace_path(run_id).read_text(encoding="utf-8"))
    assert sorted((n["node"], n["error"]) for n in trace["nodes"]) == [("a", None), ("b", None),
                                                                       ("c", "interrupted")]
    again = Steps()
    result = Workflow.resume(run_id, tools=again.registry(), store=store())
    assert result.outputs == {"d": "xabxacd"}
    assert again.calls == ["xac", "xabxacd"]
    assert sorted(n.node for n in result.trace.nodes) == ["a", "b", "c", "d"]


def test_a_node_finished_beside_one_cut_off_by_a_kill_is_in_the_resumed_trace_once() -> None:
    # A kill -9 saves no trace.json and leaves the record ``running``: only the checkpoint remembers that
    # b finished in the step that c's kill cut short (its writes are the step's pending writes).
    Path("fan.yaml").write_text(FAN, encoding="utf-8")
    run_id = new_run_id()
    steps = Steps(hang_on="xac")

    async def cut_off_c() -> None:
        wf = Workflow.from_yaml("fan.yaml", tools=steps.registry(), store=store())
        task = asyncio.ensure_future(wf.arun({"word": "x"}, run_id=run_id))
        await asyncio.wait_for(steps.hanging.wait(), 30)
        while "xab" not in steps.calls:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # b has returned and its writes are saved
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(cut_off_c())
    store().trace_path(run_id).unlink()
    record = store().load_record(run_id)
    store().save_record(record.model_copy(update={"status": "running", "error": None}))

    resumed_at = time.time()
    again = Steps()
    result = Workflow.resume(run_id, tools=again.registry(), store=store())
    assert result.outputs == {"d": "xabxacd"}
    assert again.calls == ["xac", "xabxacd"]  # a and b finished before the kill: not run again
    saved = json.loads(store().trace_path(run_id).read_text(encoding="utf-8"))
    nodes = {n["node"]: n for n in saved["nodes"]}
    assert sorted(n["node"] for n in saved["nodes"]) == ["a", "b", "c", "d"]  # each once
    assert [n["node"] for n in saved["nodes"]][:2] == ["a", "b"]  # oldest step first
    for kept in ("a", "b"):  # the records the killed attempt checkpointed, with what they did
        assert nodes[kept]["started_at"] < resumed_at and nodes[kept]["error"] is None
    assert nodes["b"]["inputs"] == {"a": "xa"} and nodes["b"]["outputs"] == {"b": "xab"}
    assert all(nodes[n]["started_at"] >= resumed_at for n in ("c", "d"))
    # The hidden channel carrying the records shows nowhere the user looks.
    assert "__trace__" not in store().trace_path(run_id).read_text(encoding="utf-8")
    assert "__trace__" not in (store().run_dir(run_id) / "run.json").read_text(encoding="utf-8")
