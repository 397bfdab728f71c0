"""The process executor, with real spawned worker processes (no LLM: tool and code workflows)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentforge.cli import app
from agentforge.envs.registry import load_env
from agentforge.errors import ConfigError
from agentforge.evaluation.evaluator import TraceSink, aevaluate, evaluate
from agentforge.evaluation.executors import AsyncioExecutor, ProcessExecutor, split_slots
from agentforge.evaluation.report import TaskResult
from agentforge.runtime.workflow import Workflow
from tests.unit.calc_job import calc_setup, write_env

# Each episode runs a sandboxed interpreter that sleeps, so episodes overlap and take real time.
SLOW_WORKFLOW = """
version: 1
name: slow
inputs: {expression: str, delay: float}
outputs: {answer: float}
nodes:
  - {id: wait, kind: code, source: "import time; time.sleep(delay); print(eval(expression))",
     inputs: [expression, delay], outputs: {answer: float}}
"""

@pytest.fixture(scope="module")
def executor() -> Iterator[ProcessExecutor]:
    with ProcessExecutor(workers=2) as started:
        yield started


def slow_setup(tmp: Path, n: int, delay: float) -> tuple[Workflow, Path]:
    rows: list[dict[str, object]] = [
        {"id": f"s{i}", "expression": f"{i} + 1", "delay": delay, "answer": i + 1} for i in range(n)]
    env_path = write_env(tmp, "slow", "expression, delay", rows)
    (tmp / "slow_wf.yaml").write_text(textwrap.dedent(SLOW_WORKFLOW))
    return Workflow.from_yaml(tmp / "slow_wf.yaml"), env_path


def test_workers_match_the_asyncio_results_and_stream_results_and_traces(
        tmp_path: Path, executor: ProcessExecutor) -> None:
    wf, env_path = calc_setup(tmp_path)
    local = evaluate(wf, str(env_path), split=None, executor=AsyncioExecutor(), concurrency=4)
    seen: list[TaskResult] = []
    remote = evaluate(wf, str(env_path), split=None, executor=executor, concurrency=4, on_result=seen.append,
                      sink=TraceSink(tmp_path / "runs"))
    assert remote.executor == "processes"
    assert [r.task_id for r in remote.results] == [r.task_id for r in local.results]
    assert remote.scores == local.scores
    assert remote.mean_score == pytest.approx(16 / 24)  # every third answer in the file is off by one
    assert sorted(r.task_id for r in seen) == sorted(r.task_id for r in remote.results)
    assert len(seen) == 24
    assert executor.rebuilt == 2  # a job neither worker had seen
    # Traces come back to this process and land in this evaluation's traces.jsonl.
    assert remote.traces_path is not None
    lines = {rec["task_id"]: rec for rec in map(json.loads, Path(remote.traces_path).read_text().splitlines())}
    assert set(lines) == {r.task_id for r in remote.results}
    for result in remote.results:
        assert result.trace_path == f"{remote.traces_path}#{result.task_id}"
        path, task_id = result.trace_path.split("#")
        assert Path(path).is_file() and lines[task_id]["steps"]
        assert lines[task_id]["steps"][0]["nodes"][0]["node"] == "calc"


def test_a_second_evaluation_reuses_the_warm_workers_and_their_rebuilt_job(
        tmp_path: Path, executor: ProcessExecutor) -> None:
    wf, env_path = calc_setup(tmp_path)
    pids = executor.start().pids
    assert len(pids) == 2 and os.getpid() not in pids
    first = evaluate(wf, str(env_path), split="val", executor=executor, concurrency=4)
    assert executor.rebuilt == 2
    second = evaluate(wf, str(env_path), split="val", executor=executor, concurrency=6)
    assert executor.pids == pids
    assert executor.rebuilt == 0  # both workers kept the job from the first evaluation
    local = evaluate(wf, str(env_path), split="val", executor=AsyncioExecutor())
    assert [r.task_id for r in second.results] == [r.task_id for r in local.results]
    assert second.scores == first.scores == local.scores


def test_an_edited_data_file_makes_the_workers_rebuild_the_job(tmp_path: Path, executor: ProcessExecutor) -> None:
    wf, env_path = calc_setup(tmp_path)
    first = evaluate(wf, str(env_path), split=None, executor=executor, concurrency=4)
    assert first.mean_score == pytest.approx(16 / 24)
    # Same YAML file, untouched; only its JSONL data changes: every answer is now right.
    rows = [{"id": f"e{i}", "expression": f"{i} * 7 + 1", "answer": i * 7 + 1} for i in range(24)]
    (tmp_path / "calc.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    second = evaluate(wf, str(env_path), split=None, executor=executor, concurrency=4)
    assert executor.rebuilt == 2
    assert second.mean_score == 1.0


def test_tasks_are_pulled_by_every_worker(tmp_path: Path, executor: ProcessExecutor) -> None:
    wf, env_path = slow_setup(tmp_path, n=12, delay=0.05)
    report = evaluate(wf, str(env_path), split=None, executor=executor, concurrency=4)
    assert report.mean_score == 1.0 and report.errors == 0
    assert set(executor.placements) == {r.task_id for r in report.results}
    assert set(executor.placements.values()) == set(executor.pids)
    assert len(executor.pids) == 2


async def test_a_killed_worker_fails_only_its_running_tasks_and_the_others_finish(
        tmp_path: Path, executor: ProcessExecutor) -> None:
    wf, env_path = slow_setup(tmp_path, n=10, delay=0.3)
    await asyncio.to_thread(executor.start)
    killed: list[int] = []

    def kill_first_worker(result: TaskResult) -> None:
        if not killed:  # the worker that ran the first result has just been handed another task
            killed.append(executor.placements[result.task_id])
            os.kill(killed[0], signal.SIGKILL)

    report = await asyncio.wait_for(
        aevaluate(wf, str(env_path), split=None, executor=executor, concurrency=4, on_result=kill_first_worker),
        timeout=90)
    assert [r.task_id for r in report.results] == [f"s{i}" for i in range(10)]
    failed = [r for r in report.results if r.error]
    assert failed
    for result in failed:
        assert f"worker {killed[0]}" in result.error  # type: ignore[operator]
        assert "SIGKILL" in result.error and "exit code -9" in result.error  # type: ignore[operator]
        assert executor.placements[result.task_id] == killed[0]
    assert all(r.score == 1.0 for r in report.results if not r.error)
    assert executor.pids and killed[0] not in executor.pids
    # The next start replaces the dead worker.
    await asyncio.to_thread(executor.start)
    assert len(executor.pids) == 2 and killed[0] not in executor.pids


def test_the_concurrency_limit_holds_across_workers(tmp_path: Path, executor: ProcessExecutor) -> None:
    wf, env_path = slow_setup(tmp_path, n=12, delay=0.2)
    report = evaluate(wf, str(env_path), split=None, executor=executor, concurrency=5)
    assert report.errors == 0
    assert executor.peak_in_flight == 5  # shares of 3 + 2, not ceil(5 / 2) = 3 each
    evaluate(wf, str(env_path), split=None, executor=executor, concurrency=1)
    assert executor.peak_in_flight == 1


async def test_a_dead_workers_share_of_the_concurrency_passes_to_a_survivor(
        tmp_path: Path, executor: ProcessExecutor) -> None:
    # Concurrency 1 over 2 workers: one holds the only slot. Killing it must not strand the queue.
    wf, env_path = slow_setup(tmp_path, n=6, delay=0.2)
    await asyncio.to_thread(executor.start)
    killed: list[int] = []

    def kill_the_busy_worker(result: TaskResult) -> None:
        if not killed:
            killed.append(executor.placements[result.task_id])
            os.kill(killed[0], signal.SIGKILL)

    report = await asyncio.wait_for(
        aevaluate(wf, str(env_path), split=None, executor=executor, concurrency=1, on_result=kill_the_busy_worker),
        timeout=90)
    assert len(report.results) == 6
    first, *rest = report.results  # concurrency 1: the tasks ran one after another, in order
    assert not first.error and executor.placements[first.task_id] == killed[0]
    assert sum(1 for r in rest if r.error) <= 1  # only the task in flight on the dead worker
    finished = [r for r in rest if not r.error]
    assert len(finished) >= 4 and all(executor.placements[r.task_id] != killed[0] for r in finished)
    assert executor.peak_in_flight == 1


def test_concurrency_shares_add_up_exactly() -> None:
    assert split_slots(32, 6) == [6, 6, 5, 5, 5, 5]
    assert split_slots(5, 2) == [3, 2]
    assert split_slots(1, 3) == [1, 0, 0]
    assert split_slots(0, 2) == [1, 0]
    assert all(sum(split_slots(c, w)) == max(1, c) for c in range(40) for w in range(1, 9))


async def test_when_every_worker_dies_the_remaining_tasks_fail_with_a_clear_error(
        tmp_path: Path, executor: ProcessExecutor) -> None:
    wf, env_path = slow_setup(tmp_path, n=10, delay=0.3)
    pids = (await asyncio.to_thread(executor.start)).pids

    def kill_all(result: TaskResult) -> None:
        for pid in executor.pids:
            os.kill(pid, signal.SIGKILL)

    report = await asyncio.wait_for(
        aevaluate(wf, str(env_path), split=None, executor=executor, concurrency=4, on_result=kill_all), timeout=90)
    assert len(report.results) == 10
    never_ran = [r for r in report.results if r.failure and r.failure.message.startswith("not run")]
    assert never_ran
    for result in never_ran:
        assert "every evaluation worker process died" in result.error  # type: ignore[operator]
        assert all(f"worker {pid}" in result.error for pid in pids)  # type: ignore[operator]
    assert executor.pids == []


def test_a_job_the_workers_cannot_rebuild_raises_and_keeps_them_running(
        tmp_path: Path, executor: ProcessExecutor) -> None:
    wf, env_path = calc_setup(tmp_path)
    env = load_env(env_path)
    pids = executor.start().pids
    with pytest.raises(ConfigError, match="could not rebuild the job") as raised:
        evaluate(wf, env, split=None, executor=executor, env_ref=str(tmp_path / "moved-away.yaml"))
    assert "moved-away.yaml" in str(raised.value)
    assert executor.pids == pids
    ok = evaluate(wf, str(env_path), split="val", executor=executor)
    assert ok.errors == 0 and executor.pids == pids


def test_the_environment_must_be_named_so_workers_can_rebuild_it(tmp_path: Path) -> None:
    wf, env_path = calc_setup(tmp_path)
    unstarted = ProcessExecutor(workers=2)
    with pytest.raises(ConfigError, match="YAML path or a built-in name"):
        evaluate(wf, load_env(env_path), split=None, executor=unstarted)
    assert unstarted.pids == []  # refused before any process was spawned


def test_cli_eval_with_worker_processes(tmp_path: Path) -> None:
    wf, env_path = calc_setup(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["eval", str(tmp_path / "calc_wf.yaml"), "--env", str(env_path), "--split", "val",
                                 "--executor", "processes", "--workers", "2", "--concurrency", "4", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    local = evaluate(wf, str(env_path), split="val", executor=AsyncioExecutor())
    assert report["executor"] == "processes"
    assert [r["task_id"] for r in report["results"]] == [r.task_id for r in local.results]
    assert [r["score"] for r in report["results"]] == local.scores
    assert Path(report["traces_path"]).is_file()
    bad = runner.invoke(app, ["eval", str(tmp_path / "calc_wf.yaml"), "--env", str(env_path),
                              "--executor", "threads"])
    assert bad.exit_code == 2 and "asyncio, processes or ray" in bad.output
    no_workers = runner.invoke(app, ["eval", str(tmp_path / "calc_wf.yaml"), "--env", str(env_path),
                                     "--executor", "processes", "--workers", "0"])
    assert no_workers.exit_code == 2
