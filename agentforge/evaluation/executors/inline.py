"""Episodes as asyncio tasks in the caller's process, on the caller's own live objects."""

from __future__ import annotations

from collections.abc import Sequence

from agentforge.envs.base import Task
from agentforge.evaluation.executors.base import OnResult, play_all
from agentforge.evaluation.job import EvalJob, resolve
from agentforge.evaluation.report import TaskResult


class AsyncioExecutor:
    """Episodes as asyncio tasks in this process, at most ``concurrency`` at once. Runs the workflows and
    environment the caller bound to the job; a job with nothing bound is rebuilt from its record."""

    name = "asyncio"

    async def amap(self, job: EvalJob, tasks: Sequence[Task], *, concurrency: int,
                   on_result: OnResult | None = None) -> list[TaskResult]:
        resolved, _ = resolve(job)
        return await play_all(resolved, tasks, concurrency, on_result)
