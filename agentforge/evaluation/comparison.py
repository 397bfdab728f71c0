"""Is a candidate better than its parent beyond noise? Paired comparisons of per-task scores.

Two evaluations are compared on the task ids they share, each task's scores averaged over its repeats
first (a stochastic workflow is scored several times per task). :func:`compare_paired` gives the mean
per-task difference with a paired bootstrap interval, and the wins, losses and ties with a one-sided exact
sign test. :meth:`PairedComparison.improved` is the acceptance rule the evolve loop uses: the interval's
lower bound above 0 (``"bootstrap"``) or the sign test's p below ``1 - level`` (``"sign"``).

Pure: the caller hands in the random generator, so the same inputs and seed give the same interval.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Literal

__all__ = ["PairedComparison", "compare_paired", "sign_test_p"]

Scores = Mapping[str, float | Sequence[float]]
Method = Literal["bootstrap", "sign"]


@dataclass(frozen=True)
class PairedComparison:
    """Child minus parent on ``n`` shared tasks."""

    n: int
    mean_diff: float
    ci_low: float
    ci_high: float
    level: float
    wins: int
    losses: int
    ties: int
    sign_p: float  # one-sided: the chance of this many wins or more among wins + losses if neither is better

    def improved(self, method: Method = "bootstrap") -> bool:
        """Better beyond noise at ``level``: the paired interval excludes 0 from below, or the sign test."""
        if method == "bootstrap":
            return self.ci_low > 0.0
        if method == "sign":
            return self.sign_p < 1.0 - self.level
        raise ValueError(f"unknown acceptance method '{method}': use 'bootstrap' or 'sign'")

    def describe(self) -> str:
        return (f"{self.mean_diff:+.3f} [{self.ci_low:+.3f}, {self.ci_high:+.3f}] at {self.level:.0%} on "
                f"{self.n} paired tasks; {self.wins} better, {self.losses} worse, {self.ties} equal "
                f"(sign test p={self.sign_p:.3f})")


def _per_task(scores: Scores) -> dict[str, float]:
    out: dict[str, float] = {}
    for task_id, value in scores.items():
        if isinstance(value, int | float):
            out[task_id] = float(value)
        elif len(value) > 0:
            out[task_id] = fmean(float(v) for v in value)
        else:
            raise ValueError(f"task '{task_id}' has no scores")
    return out


def sign_test_p(wins: int, losses: int) -> float:
    """One-sided exact sign test: P(X >= wins) for X ~ Binomial(wins + losses, 1/2); 1.0 with no decisions."""
    if wins < 0 or losses < 0:
        raise ValueError("wins and losses are counts")
    trials = wins + losses
    if trials == 0:
        return 1.0
    return sum(math.comb(trials, k) for k in range(wins, trials + 1)) / 2 ** trials


def compare_paired(parent: Scores, child: Scores, *, rng: random.Random, level: float = 0.95,
                   resamples: int = 2000) -> PairedComparison:
    """The child's gain over the parent on the task ids both were scored on (percentile bootstrap)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level is a probability strictly between 0 and 1, not {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, not {resamples}")
    before, after = _per_task(parent), _per_task(child)
    shared = sorted(before.keys() & after.keys())
    if not shared:
        raise ValueError("the two evaluations share no task ids: a paired comparison needs the same tasks")
    diffs = [after[t] - before[t] for t in shared]
    n = len(diffs)
    means = sorted(fmean(diffs[rng.randrange(n)] for _ in range(n)) for _ in range(resamples))
    tail = (1.0 - level) / 2.0
    low = means[min(resamples - 1, math.floor(tail * resamples))]
    high = means[max(0, math.ceil((1.0 - tail) * resamples) - 1)]
    wins = sum(d > 0 for d in diffs)
    losses = sum(d < 0 for d in diffs)
    return PairedComparison(n=n, mean_diff=fmean(diffs), ci_low=low, ci_high=high, level=level, wins=wins,
                            losses=losses, ties=n - wins - losses, sign_p=sign_test_p(wins, losses))
