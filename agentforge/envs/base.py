"""The environment contract, in AgentGym's uni-format.

An :class:`Environment` is a definition: an instruction, a task list with splits, and a way to open
independent :class:`Session` objects. A session plays one episode at a time:
``reset(task_id) -> Observation`` then ``step(action) -> StepResult`` until ``done``. Sessions are
async first; each sync twin drops the ``a``. Open one session per concurrent episode.

What the agent may see is the :class:`Observation` (and the environment's instruction). A task's
``answer`` and ``meta`` and a step's ``info`` are for metrics, oracles and reports only.

Secrets: ``Environment.secret_fields`` names the ``info`` (and ``meta``) keys that hold gold data
(``answer`` always; e.g. SQL's ``gold_sql``). The evaluator drops them, at any depth, before a step's
info becomes evidence, so they never reach a report, a trace or an optimizer's prompt.

Unparsable answers: a metric that could not read an answer from the prediction says so with
``Score(value=0, parsed=False, feedback="...")``; the environment passes it on as
``StepResult.parsed=False`` (and the feedback), and the evaluator records a typed
``unparsable_answer`` error on the task, besides the score of 0.
"""

from __future__ import annotations

import hashlib
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


class Score(BaseModel):
    """What a metric found: a value in [0, 1] and, where it can say why, feedback an optimizer can learn from
    (``"expected 12, got 11"``, ``"program printed nothing"``)."""

    model_config = ConfigDict(frozen=True)

    value: float
    feedback: str | None = None
    parsed: bool = Field(default=True, description="False: no answer could be read from the prediction.")


class StepResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    observation: Observation
    reward: float
    done: bool
    info: dict[str, Any] = Field(default_factory=dict, description="Never shown to the agent.")
    feedback: str | None = Field(default=None, description="Why the step scored as it did (for optimizers).")
    parsed: bool = Field(default=True, description="False: the metric could not read an answer from the action.")


class Session(ABC):
    """One episode at a time against one environment."""

    @abstractmethod
    async def areset(self, task_id: str) -> Observation: ...

    @abstractmethod
    async def astep(self, action: str) -> StepResult: ...

    async def aclose(self) -> None:
        return None

    def reset(self, task_id: str) -> Observation:
        from agentforge._sync import run_sync

        return run_sync(self.areset(task_id))

    def step(self, action: str) -> StepResult:
        from agentforge._sync import run_sync

        return run_sync(self.astep(action))

    def close(self) -> None:
        from agentforge._sync import run_sync

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
    # Keys of ``info``/``meta`` that hold gold data; an environment adds its own to these.
    secret_fields: frozenset[str] = frozenset({"answer"})

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

    def public(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """``data`` (a step's info, a task's meta) without the secret fields, at any depth."""
        return _without(data, self.secret_fields)

    def public_task(self, task: Task) -> Task:
        """``task`` as code that writes prompts may see it (a per-task policy, an optimizer): no answer,
        and its meta without the secret fields."""
        return task.model_copy(update={"answer": None, "meta": self.public(task.meta)})

    @abstractmethod
    def session(self) -> Session:
        """A fresh, independent session (one per concurrent episode)."""

    async def aclose(self) -> None:
        """Release shared resources (connections, files); sessions close themselves."""
        return None


def _without(value: Any, secret: frozenset[str]) -> Any:
    if isinstance(value, Mapping):
        return {k: _without(v, secret) for k, v in value.items() if k not in secret}
    if isinstance(value, list | tuple):
        return [_without(v, secret) for v in value]
    return value


def split_point(key: str, seed: int = 0) -> float:
    """Where ``key`` falls in [0, 1) for ``seed``: a hash, so it depends on nothing but the key and the seed."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(
    ids: Sequence[str],
    splits: Mapping[str, float | int] | None = None,
    seed: int = 0,
) -> dict[str, Split]:
    """Deterministically assign ids to train/val/test.

    ``splits`` gives fractions (summing to at most 1) or counts per split; the default is 60/20/20.

    Fractions: each id goes by its own seeded hash (:func:`split_point`) into test, val or train by
    cumulative thresholds, so an id's split depends only on the id and the seed. Adding, removing or
    reordering other tasks moves no task, and val/test tasks never drift into train; the sizes are near
    the fractions (binomially), not exact. The share left over when fractions sum to less than 1 is train.

    Counts: exact sizes, taken in order of the same hash (test first, then val; the rest train). Adding
    tasks can move a task across a boundary here, since exact sizes need it; prefer fractions for data that grows.
    """
    splits = dict(splits or {"train": 0.6, "val": 0.2, "test": 0.2})
    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise EnvError(f"unknown split name(s) {sorted(unknown)}; use train, val and test")
    values = list(splits.values())
    if any(isinstance(v, bool) or not isinstance(v, int | float) or v < 0 for v in values):
        raise EnvError(f"split sizes must be non-negative numbers, got {splits}")
    points = {task_id: split_point(task_id, seed) for task_id in ids}
    if all(isinstance(v, float) for v in values) or any(isinstance(v, float) and v < 1 for v in values):
        if sum(values) > 1.0 + 1e-9:
            raise EnvError(f"split fractions sum to {sum(values):.3f} > 1")
        test_end = float(splits.get("test", 0.0))
        val_end = test_end + float(splits.get("val", 0.0))
        return {task_id: "test" if u < test_end else "val" if u < val_end else "train"
                for task_id, u in points.items()}
    counts = {name: int(n) for name, n in splits.items()}
    total = len(points)
    if sum(counts.values()) > total:
        raise EnvError(f"split sizes {counts} need {sum(counts.values())} tasks; only {total} exist")
    order = sorted(points, key=lambda task_id: (points[task_id], task_id))
    out: dict[str, Split] = {}
    start = 0
    for name in ("test", "val", "train"):
        n = counts.get(name, 0)
        for task_id in order[start:start + n]:
            out[task_id] = name
        start += n
    for task_id in order[start:]:  # ids beyond the counts train; they are never evaluated on
        out[task_id] = "train"
    return {task_id: out[task_id] for task_id in points}
