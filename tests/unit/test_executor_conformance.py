"""The executor contract, checked the same way for each executor on this machine (Ray: test_ray_executor.py):
``amap(job, tasks, *, concurrency, on_result)`` returns one result per task in task order, calls
``on_result`` once per task as it finishes, and brings each episode's traces back inside its result."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentforge.envs.registry import load_env
from agentforge.evaluation.executors import AsyncioExecutor, Executor, ProcessExecutor
from agentforge.evaluation.job import bind, build_job
from agentforge.evaluation.report import TaskResult
from tests.unit.calc_job import calc_setup


@pytest.fixture(scope="module")
def processes() -> Iterator[ProcessExecutor]:
    with ProcessExecutor(workers=2) as started:
        yield started


@pytest.fixture(params=["asyncio", "processes"])
def executor(request: pytest.FixtureRequest) -> Executor:
    if request.param == "processes":
        started: ProcessExecutor = request.getfixturevalue("processes")
        return started
    return AsyncioExecutor()


@pytest.mark.parametrize("concurrency", [1, 5])
def test_results_come_back_in_task_order_streamed_with_their_traces(
        tmp_path: Path, executor: Executor, concurrency: int) -> None:
    wf, env_path = calc_setup(tmp_path)
    env = load_env(env_path)
    tasks = list(reversed(env.tasks()))  # any order the caller likes
    job = build_job([wf], env, env_ref=env_path)
    seen: list[TaskResult] = []

    async def run() -> list[TaskResult]:
        with bind(job, [wf], env):
            return await executor.amap(job, tasks, concurrency=concurrency, on_result=seen.append)

    results = asyncio.run(run())
    assert [r.task_id for r in results] == [t.id for t in tasks]
    assert sorted(r.task_id for r in seen) == sorted(t.id for t in tasks)
    for result in results:
        i = int(result.task_id[1:])
        assert result.ok and result.score == (0.0 if i % 3 == 0 else 1.0)
        (trace,) = result.traces
        assert trace.nodes[0].node == "calc" and result.spec_hash == wf.spec.hash


def test_no_tasks_is_no_results(tmp_path: Path, executor: Executor) -> None:
    wf, env_path = calc_setup(tmp_path)
    env = load_env(env_path)
    job = build_job([wf], env, env_ref=env_path)
    assert asyncio.run(executor.amap(job, [], concurrency=4)) == []
