"""Episodes fanned out over a Ray cluster; a local one stays on 127.0.0.1."""

from __future__ import annotations

import asyncio
import math
import os
import sys
from collections import deque
from collections.abc import Sequence
from typing import Any

from agentforge.envs.base import Task
from agentforge.errors import ConfigError
from agentforge.evaluation.executors.base import OnResult, split_slots
from agentforge.evaluation.job import EvalJob
from agentforge.evaluation.report import TaskResult

NAMESPACE = "agentforge"
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# Ray's environment switches: a single-machine cluster (everything on loopback), no usage reporting.
CLUSTER_ENV = {LOCAL_ONLY_ENV: "0", "RAY_USAGE_STATS_ENABLED": "0"}


class RayExecutor:
    """Episodes fanned out over a Ray cluster: each worker rebuilds the job (so the environment must be
    named by a YAML path or a built-in name), keeps it for the next chunk, and runs its chunk of tasks
    with asyncio; results come back to this process. At most ``num_workers`` chunks run at once, each
    with its share of ``concurrency``. ``address=None`` starts a local Ray on 127.0.0.1 only."""

    name = "ray"

    def __init__(self, address: str | None = None, num_workers: int | None = None, chunk_size: int | None = None):
        self.address = address
        self.num_workers = num_workers or max(1, (os.cpu_count() or 2))
        self.chunk_size = chunk_size

    def connect(self) -> Any:
        """Join the cluster at ``address``, or start a local one on loopback; the ``ray`` module.

        Ray turns 127.0.0.1 into the machine's routable address (even its hidden ``_node_ip_address``)
        unless it runs as a single-machine cluster. No ``ray.init`` argument selects that; the environment
        variable Ray's own messages name for it, ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``, does (0: single
        machine). Ray reads it when imported, so it is set before; a Ray imported earlier without it is
        refused rather than patched.
        """
        switch = os.environ.get(LOCAL_ONLY_ENV)
        if not self.address and switch != "0" and (switch is not None or "ray" in sys.modules):
            why = f"{LOCAL_ONLY_ENV} is {switch!r}" if switch is not None else "Ray was imported before agentforge"
            raise ConfigError(f"{why}, so a local cluster would not stay on 127.0.0.1: set {LOCAL_ONLY_ENV}=0 "
                              "before importing ray, or join a cluster with --ray-address")
        for name, value in CLUSTER_ENV.items():
            os.environ.setdefault(name, value)
        try:
            import ray
        except ImportError as exc:
            raise ConfigError("--executor ray needs Ray: pip install 'agentforge[ray]'") from exc
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, namespace=NAMESPACE, log_to_driver=False)
            else:
                ray.init(num_cpus=self.num_workers, namespace=NAMESPACE, include_dashboard=False,
                         log_to_driver=False)
        return ray

    async def amap(self, job: EvalJob, tasks: Sequence[Task], *, concurrency: int,
                   on_result: OnResult | None = None) -> list[TaskResult]:
        job.require_env("the Ray executor rebuilds the environment in each worker")
        if not tasks:
            return []
        ray = self.connect()
        remote = ray.remote(_evaluate_chunk)
        size = self.chunk_size or max(1, math.ceil(len(tasks) / (self.num_workers * 4)))
        chunks = deque([t.id for t in tasks[i:i + size]] for i in range(0, len(tasks), size))
        job_ref = ray.put(job)
        # One chunk in flight per lane, each lane with its share of the concurrency: never more at once.
        lanes = split_slots(concurrency, self.num_workers)
        pending: dict[Any, int] = {}

        def submit(lane: int) -> None:
            if chunks and lanes[lane]:
                pending[remote.remote(job_ref, chunks.popleft(), lanes[lane])] = lane

        for lane in range(len(lanes)):
            submit(lane)
        by_id: dict[str, TaskResult] = {}
        while pending:
            done, _ = await asyncio.to_thread(ray.wait, list(pending), num_returns=1)
            for ref in done:
                submit(pending.pop(ref))
                for result in await asyncio.to_thread(ray.get, ref):
                    by_id[result.task_id] = result
                    if on_result is not None:
                        on_result(result)
        return [by_id[t.id] for t in tasks]


def _evaluate_chunk(job: EvalJob, task_ids: list[str], concurrency: int) -> list[TaskResult]:
    """Runs inside a Ray worker: resolve the job (rebuilt once per worker process), play a chunk."""
    from agentforge.evaluation.executors.base import play_all
    from agentforge.evaluation.gc_tuning import relaxed_gc
    from agentforge.evaluation.job import resolve
    from agentforge.llm.gateway import evaluating

    resolved, _ = resolve(job)

    async def main() -> list[TaskResult]:
        evaluating.set(True)
        return await play_all(resolved, [resolved.task(t) for t in task_ids], concurrency)

    with relaxed_gc(resolved.settings.eval_gc_threshold):
        return asyncio.run(main())
