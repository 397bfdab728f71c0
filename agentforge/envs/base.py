"""The environment contract, in AgentGym's uni-format.

An :class:`Environment` is a definition: an instruction, a task list with splits, and a way to open
independent :class:`Session` objects. A session plays one episode at a time:
``reset(task_id) -> Observation`` then ``step(action) -> StepResult`` until ``done``. Sessions are
async first; each sync twin drops the ``a``. Open one session per concurrent episode.

What the agent may see is the :class:`Observation` (and the environment's instruction). A task's
``answer`` and ``meta`` and a step's ``info`` are for metrics, oracles and reports only.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentforge.errors import EnvError

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")


class Task(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    split: Split = "train"
    inputs: dict[str, Any] = Field(default_factory=dict, description="What the agent may see.")
    answer: Any = Field(default=None, description="Hidden: for the metric and the oracle.")
    meta: dict[str, Any] = Field(default_factory=dict, description="Hidden: generator parameters, provenance.")


class Observation(BaseModel):
    model_config = ConfigDict(frozen=True)

    text: str
    available_actions: tuple[str, ...] | None = None
    fields: dict[str, Any] = Field(default_factory=dict, description="Structured values for workflow inputs.")


class StepResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    observation: Observation
    reward: float
    done: bool
    info: dict[str, Any] = Field(default_factory=dict, description="Never shown to the agent.")


class Session(ABC):
    """One episode at a time against one environment."""

    @abstractmethod
    async def areset(self, task_id: str) -> Observation: ...

    @abstractmethod
    async def astep(self, action: str) -> StepResult: ...

    async def aclose(self) -> None:
        return None

    def reset(self, task_id: str) -> Observation:
        from agentforge.runtime.workflow import run_sync

        return run_sync(self.areset(task_id))

    def step(self, action: str) -> StepResult:
        from agentforge.runtime.workflow import run_sync

        return run_sync(self.astep(action))

    def close(self) -> None:
        from agentforge.runtime.workflow import run_sync

        run_sync(self.aclose())


def check_step(env_name: str, task: Task | None, done: bool, action: object) -> None:
    """What every session checks before a step, local or remote: reset first, not after the end, text only."""
    if task is None:
        raise EnvError(f"{env_name}: step before reset", env=env_name)
    if done:
        raise EnvError(f"{env_name}: the episode of task '{task.id}' has finished; reset first",
                       env=env_name, task=task.id)
    if not isinstance(action, str):
        raise EnvError(f"{env_name}: an action must be text, got {type(action).__name__}", env=env_name)


class LocalSession(Session):
    """A session whose environment runs in this process. Subclasses implement ``_reset``/``_step``.

    The base enforces the episode rules every environment shares: no step before a reset, no step
    after ``done``, and ``done`` once ``max_steps`` actions were taken (the reward stays as given).
    """

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.task: Task | None = None
        self.steps = 0
        self.done = False

    @abstractmethod
    def _reset(self, task: Task) -> Observation: ...

    @abstractmethod
    def _step(self, action: str) -> StepResult: ...

    async def areset(self, task_id: str) -> Observation:
        return self.reset(task_id)

    async def astep(self, action: str) -> StepResult:
        return self.step(action)

    def reset(self, task_id: str) -> Observation:
        self.task = self.env.task(task_id)
        self.steps = 0
        self.done = False
        return self._reset(self.task)

    def step(self, action: str) -> StepResult:
        check_step(self.env.name, self.task, self.done, action)
        assert self.task is not None
        self.steps += 1
        result = self._step(action)
        if not result.done and self.steps >= self.env.max_steps:
            result = result.model_copy(update={"done": True, "info": {**result.info, "truncated": True}})
        self.done = result.done
        return result

    def close(self) -> None:
        self.task = None

    async def aclose(self) -> None:
        self.close()


class Environment(ABC):
    """An environment definition: instruction, tasks with splits, and sessions."""

    name: str = "env"
    instruction: str = ""
    multi_turn: bool = False
    max_steps: int = 1

    def __init__(self, tasks: Sequence[Task] = ()) -> None:
        self._tasks: dict[str, Task] = {}
        self._set_tasks(tasks)

    def _set_tasks(self, tasks: Sequence[Task]) -> None:
        self._tasks = {}
        for task in tasks:
            if task.id in self._tasks:
                raise EnvError(f"{self.name}: duplicate task id '{task.id}'", env=self.name)
            self._tasks[task.id] = task

    def tasks(self, split: Split | None = None) -> list[Task]:
        """Tasks in a stable order, optionally of one split."""
        return [t for t in self._tasks.values() if split is None or t.split == split]

    def task(self, task_id: str) -> Task:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise EnvError(f"{self.name}: unknown task id '{task_id}'", env=self.name, task=task_id) from None

    @abstractmethod
    def session(self) -> Session:
        """A fresh, independent session (one per concurrent episode)."""

    async def aclose(self) -> None:
        """Release shared resources (connections, files); sessions close themselves."""
        return None


def assign_splits(
    ids: Sequence[str],
    splits: Mapping[str, float | int] | None = None,
    seed: int = 0,
) -> dict[str, Split]:
    """Deterministically assign ids to train/val/test.

    ``splits`` gives fractions (summing to at most 1) or counts per split; the default is
    60/20/20. The assignment is a seeded shuffle, so the same ids and seed give the same splits,
    and ids left over after the sizes are met go to train.
    """
    splits = dict(splits or {"train": 0.6, "val": 0.2, "test": 0.2})
    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise EnvError(f"unknown split name(s) {sorted(unknown)}; use train, val and test")
    total = len(ids)
    values = list(splits.values())
    if all(isinstance(v, float) for v in values) or any(isinstance(v, float) and v < 1 for v in values):
        if sum(values) > 1.0 + 1e-9:
            raise EnvError(f"split fractions sum to {sum(values):.3f} > 1")
        # Floor each share so the sizes never exceed the tasks; rounding leftovers go to train below.
        counts = {name: math.floor(float(frac) * total + 1e-9) for name, frac in splits.items()}
    else:
        counts = {name: int(n) for name, n in splits.items()}
    if sum(counts.values()) > total:
        raise EnvError(f"split sizes {counts} need {sum(counts.values())} tasks; only {total} exist")
    order = list(ids)
    random.Random(seed).shuffle(order)
    out: dict[str, Split] = {}
    start = 0
    for name in SPLITS:
        n = counts.get(name, 0)
        for task_id in order[start:start + n]:
            out[task_id] = name
        start += n
    for task_id in order[start:]:  # rounding leftovers train; they are never evaluated on
        out[task_id] = "train"
    return out
