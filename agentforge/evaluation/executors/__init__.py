"""Where evaluation episodes run: asyncio tasks in this process (``inline``), persistent worker
processes on this machine (``processes``), or Ray workers in a cluster (``ray_cluster``).

Each takes an ``EvalJob`` and the tasks and returns one ``TaskResult`` per task, in task order.
"""

from agentforge.evaluation.executors.base import Executor, OnResult, split_slots
from agentforge.evaluation.executors.inline import AsyncioExecutor
from agentforge.evaluation.executors.processes import ProcessExecutor
from agentforge.evaluation.executors.ray_cluster import RayExecutor

__all__ = ["AsyncioExecutor", "Executor", "OnResult", "ProcessExecutor", "RayExecutor", "split_slots"]
