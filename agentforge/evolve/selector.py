"""Parent selection: which pool member the next generation improves on.

Small swappable objects with one method, ``select(pool, rng) -> hash``. Each pool member comes with its
per-task val scores. ``ParetoSelector`` follows GEPA: a member is on the front if it is best (ties
included) on at least one val task and no other member is at least as good everywhere and better
somewhere; it is drawn with probability proportional to the number of tasks it leads on, so members
that solve different tasks all get tried. With probability ``uniform`` it draws any member instead,
so the best is never picked every time. ``SoftmaxSelector`` draws by mean val score at a temperature.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Protocol

PoolScores = Mapping[str, Mapping[str, float]]  # spec hash -> task id -> mean score


class Selector(Protocol):
    def select(self, pool: PoolScores, rng: random.Random) -> str: ...


def _mean(scores: Mapping[str, float]) -> float:
    return sum(scores.values()) / len(scores) if scores else 0.0


def pareto_front(pool: PoolScores) -> dict[str, int]:
    """Members on the per-task front, each with the number of tasks on which it has the top score."""
    members = sorted(pool)
    tasks = sorted({t for scores in pool.values() for t in scores})
    leads: dict[str, int] = {}
    for task in tasks:
        best = max(pool[m].get(task, 0.0) for m in members)
        if best <= 0.0:
            continue
        for m in members:
            if pool[m].get(task, 0.0) == best:
                leads[m] = leads.get(m, 0) + 1

    def dominated(a: str) -> bool:
        for b in leads:
            if b == a:
                continue
            ge = all(pool[b].get(t, 0.0) >= pool[a].get(t, 0.0) for t in tasks)
            gt = any(pool[b].get(t, 0.0) > pool[a].get(t, 0.0) for t in tasks)
            if ge and gt:
                return True
        return False

    return {m: n for m, n in leads.items() if not dominated(m)}


class ParetoSelector:
    name = "pareto"

    def __init__(self, uniform: float = 0.2) -> None:
        self.uniform = uniform

    def select(self, pool: PoolScores, rng: random.Random) -> str:
        members = sorted(pool)
        if len(members) == 1:
            return members[0]
        if rng.random() < self.uniform:
            return rng.choice(members)
        front = pareto_front(pool)
        if not front:  # nothing solved anything yet: any member is as good a start
            return rng.choice(members)
        names = sorted(front)
        return rng.choices(names, weights=[front[n] for n in names])[0]


class SoftmaxSelector:
    name = "softmax"

    def __init__(self, uniform: float = 0.2, temperature: float = 0.1) -> None:
        self.uniform = uniform
        self.temperature = temperature

    def select(self, pool: PoolScores, rng: random.Random) -> str:
        members = sorted(pool)
        if len(members) == 1 or rng.random() < self.uniform:
            return rng.choice(members)
        means = [_mean(pool[m]) for m in members]
        top = max(means)
        weights = [math.exp((m - top) / self.temperature) for m in means]
        return rng.choices(members, weights=weights)[0]


def make_selector(name: str, uniform: float) -> Selector:
    return ParetoSelector(uniform) if name == "pareto" else SoftmaxSelector(uniform)
