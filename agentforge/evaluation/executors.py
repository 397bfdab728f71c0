"""Where evaluation episodes run: asyncio tasks in this process, or Ray workers in a cluster.

An executor takes the job and the tasks and returns one ``TaskResult`` per task, in task order.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from typing import Any, Protocol

from agentforge.envs.base import Environment, Task
from agentforge.errors import ConfigError
from agentforge.evaluation.report import TaskResult
from agentforge.logs import get_logger

log = get_logger(__name__)

RunOne = Callable[[Task], Awaitable[TaskResult]]
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class Executor(Protocol):
    name: str

    async def amap(self, job: Any, workflow: Any, env: Environment, tasks: Sequence[Task], *, run_one: RunOne,
                   concurrency: int, on_result: Callable[[TaskResult], None] | None,
                   sink: Any) -> list[TaskResult]: ...


class AsyncioExecutor:
    """Episodes as asyncio tasks in this process, at most ``concurrency`` at once."""

    name = "asyncio"

    async def amap(self, job: Any, workflow: Any, env: Environment, tasks: Sequence[Task], *, run_one: RunOne,
                   concurrency: int, on_result: Callable[[TaskResult], None] | None = None,
                   sink: Any = None) -> list[TaskResult]:
        limit = asyncio.Semaphore(max(1, concurrency))

        async def one(task: Task) -> TaskResult:
            async with limit:
                result = await run_one(task)
            if on_result is not None:
                on_result(result)
            return result

        return list(await asyncio.gather(*(one(t) for t in tasks)))


class RayExecutor:
    """Episodes fanned out over a Ray cluster: each worker rebuilds the workflow and the environment
    from the job (so the environment must be named by a YAML path or a built-in name) and runs its
    chunk of tasks with asyncio. ``address=None`` starts a local Ray on 127.0.0.1."""

    name = "ray"

    def __init__(self, address: str | None = None, num_workers: int | None = None, chunk_size: int | None = None):
        self.address = address
        self.num_workers = num_workers or max(1, (os.cpu_count() or 2))
        self.chunk_size = chunk_size

    def _ray(self) -> Any:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if not self.address:
            # A local cluster must stay on loopback. Ray turns 127.0.0.1 into the machine's
            # routable address unless it runs in single-machine mode, which this variable selects.
            os.environ.setdefault(LOCAL_ONLY_ENV, "0")
        try:
            import ray
        except ImportError as exc:
            raise ConfigError("--executor ray needs Ray: pip install 'agentforge[ray]'") from exc
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                from ray._private import ray_constants

                ray_constants.ENABLE_RAY_CLUSTER = False  # in case Ray was imported before we set the variable
                ray.init(num_cpus=self.num_workers, include_dashboard=False, log_to_driver=False)
        return ray

    async def amap(self, job: Any, workflow: Any, env: Environment, tasks: Sequence[Task], *, run_one: RunOne,
                   concurrency: int, on_result: Callable[[TaskResult], None] | None = None,
                   sink: Any = None) -> list[TaskResult]:
        if job.env_ref is None:
            raise ConfigError("the Ray executor rebuilds the environment in each worker: name it by a YAML path or "
                              "a built-in name (e.g. --env arithmetic), not as an object")
        ray = self._ray()
        remote = ray.remote(_evaluate_chunk)
        size = self.chunk_size or max(1, math.ceil(len(tasks) / (self.num_workers * 4)))
        chunks = [list(tasks[i:i + size]) for i in range(0, len(tasks), size)]
        per_worker = max(1, math.ceil(concurrency / self.num_workers))
        job_data = asdict(job)
        pending = {remote.remote(job_data, [t.id for t in chunk], per_worker): chunk for chunk in chunks}
        by_id: dict[str, TaskResult] = {}
        while pending:
            done, _ = await asyncio.to_thread(ray.wait, list(pending), num_returns=1)
            for ref in done:
                pending.pop(ref)
                for data in await asyncio.to_thread(ray.get, ref):
                    result = TaskResult.model_validate(data)
                    by_id[result.task_id] = result
                    if on_result is not None:
                        on_result(result)
        if sink is not None:
            log.info("eval.ray_traces_not_collected", note="Ray workers keep traces in their own runs folder")
        return [by_id[t.id] for t in tasks]


def _evaluate_chunk(job_data: dict[str, Any], task_ids: list[str], concurrency: int) -> list[dict[str, Any]]:
    """Runs inside a Ray worker: rebuild, evaluate a chunk, return plain dicts."""
    from agentforge.config import Settings, use_settings
    from agentforge.envs.registry import load_env
    from agentforge.evaluation.evaluator import run_episode
    from agentforge.llm.gateway import cache_everything
    from agentforge.runtime.workflow import Workflow
    from agentforge.workflow.loader import SourceMap, spec_from_data

    settings = Settings.model_validate(job_data["settings_data"])
    with use_settings(settings):
        spec = spec_from_data(job_data["spec_data"], SourceMap(file=job_data["workflow_file"],
                                                               data=job_data["spec_data"]))
        workflow = Workflow(spec, settings=settings, validate=False)
        env = load_env(job_data["env_ref"])

        async def main() -> list[dict[str, Any]]:
            cache_everything.set(True)
            limit = asyncio.Semaphore(concurrency)

            async def one(task_id: str) -> dict[str, Any]:
                async with limit:
                    res = await run_episode(workflow, env, env.task(task_id), model=job_data["model"])
                    return res.model_dump(mode="json")

            return list(await asyncio.gather(*(one(t) for t in task_ids)))

        return asyncio.run(main())
