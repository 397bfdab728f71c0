"""The executor contract: run a job's tasks somewhere and return one ``TaskResult`` per task, in task
order, calling ``on_result`` as each one finishes. Executors never write traces: they travel inside
each ``TaskResult`` and the caller decides where they go."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol

from agentforge.envs.base import Task
from agentforge.evaluation.job import EvalJob, ResolvedJob
from agentforge.evaluation.report import TaskResult

OnResult = Callable[[TaskResult], None]


class Executor(Protocol):
    name: str

    async def amap(self, job: EvalJob, tasks: Sequence[Task], *, concurrency: int,
                   on_result: OnResult | None = None) -> list[TaskResult]: ...


def split_slots(concurrency: int, workers: int) -> list[int]:
    """Each worker's share of the episodes in flight: the shares add up to ``concurrency`` (at least 1)."""
    total = max(1, concurrency)
    return [total // workers + (1 if i < total % workers else 0) for i in range(workers)]


async def play(resolved: ResolvedJob, task: Task) -> TaskResult:
    """One episode of ``task`` with the workflow the job assigns it."""
    from agentforge.config import use_settings
    from agentforge.evaluation.evaluator import run_episode

    with use_settings(resolved.settings):
        return await run_episode(resolved.workflow(task.id), resolved.env, task, model=resolved.job.model)


async def play_all(resolved: ResolvedJob, tasks: Sequence[Task], concurrency: int,
                   on_result: OnResult | None = None) -> list[TaskResult]:
    """Every task as an asyncio task in this process, at most ``concurrency`` at once, in task order."""
    limit = asyncio.Semaphore(max(1, concurrency))

    async def one(task: Task) -> TaskResult:
        async with limit:
            result = await play(resolved, task)
        if on_result is not None:
            on_result(result)
        return result

    return list(await asyncio.gather(*(one(t) for t in tasks)))
