"""Train, val and test tasks for one run, and the guard that keeps held-out tasks from optimizers.

The environment already assigns each task a split (seeded, stable). The run takes them as they are,
trimmed to the configured sizes in the environment's order, so the same environment and config give
the same tasks. Optimizers see train tasks only; val is for acceptance, test for the seed and the final
pick. ``TaskGuard`` is the check behind that promise: every task id an optimizer is shown passes
through it, is recorded, and a val or test id raises.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from agentforge.envs.base import Environment, Task
from agentforge.errors import InputError, SafetyViolation
from agentforge.evolve.config import SplitConfig


@dataclass(frozen=True)
class Splits:
    train: tuple[Task, ...]
    val: tuple[Task, ...]
    test: tuple[Task, ...]

    @classmethod
    def of(cls, env: Environment, config: SplitConfig) -> Splits:
        tasks = env.tasks()
        by_split: dict[str, list[Task]] = {"train": [], "val": [], "test": []}
        for task in tasks:
            by_split.setdefault(task.split, []).append(task)
        sizes = {"train": config.train, "val": config.val, "test": config.test}
        minimum = {"train": config.min_train, "val": config.min_val, "test": config.min_test}
        short = [f"{name} has {len(by_split[name])} (needs {minimum[name]})"
                 for name in ("train", "val", "test") if len(by_split[name]) < minimum[name]]
        if short:
            counts = Counter(t.split for t in tasks)
            raise InputError(
                f"environment '{env.name}' has too few tasks to evolve on: {'; '.join(short)}. It has "
                f"{len(tasks)} tasks ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}); give it "
                "more tasks or other split fractions (the env's `splits:`), or lower --min-train/--min-val")
        pick = {name: tuple(by_split[name][: sizes[name]] if sizes[name] else by_split[name])
                for name in ("train", "val", "test")}
        return cls(train=pick["train"], val=pick["val"], test=pick["test"])

    def ids(self, split: str) -> tuple[str, ...]:
        return tuple(t.id for t in getattr(self, split))


@dataclass
class TaskGuard:
    """Records every task id shown to an optimizer (by whom) and refuses any that is not a train task."""

    train_ids: frozenset[str]
    held_out: frozenset[str]
    seen: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, splits: Splits) -> TaskGuard:
        return cls(train_ids=frozenset(splits.ids("train")),
                   held_out=frozenset(splits.ids("val")) | frozenset(splits.ids("test")))

    def show(self, who: str, task_ids: tuple[str, ...] | list[str]) -> None:
        leaked = [t for t in task_ids if t not in self.train_ids]
        self.seen.setdefault(who, set()).update(task_ids)
        if leaked:
            kind = "held-out" if any(t in self.held_out for t in leaked) else "unknown"
            raise SafetyViolation(f"{who} was about to be shown {kind} task(s) {sorted(leaked)[:5]}: optimizers "
                                  "see train tasks only", who=who)
