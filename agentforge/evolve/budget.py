"""What a run has spent, per role, against its limits; and whether the next piece of work still fits.

Calls and tokens are counted as asked for, cached or not: a cached call costs nothing in money or
time, but counting it keeps a replayed or resumed run stopping at the same point as the original. Fresh
calls (those that really reached a model) are counted beside them. Dollars are litellm's cost of the
fresh calls (0 for the local model). Time is wall time over every session of the run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from agentforge.evaluation.report import TaskResult
from agentforge.evolve.config import ROLES, BudgetConfig, Limits, Role


@dataclass
class Spend:
    calls: int = 0
    fresh_calls: int = 0
    tokens: int = 0
    usd: float = 0.0
    seconds: float = 0.0

    def add(self, other: Spend) -> None:
        self.calls += other.calls
        self.fresh_calls += other.fresh_calls
        self.tokens += other.tokens
        self.usd += other.usd
        self.seconds += other.seconds

    @classmethod
    def of_results(cls, results: list[TaskResult]) -> Spend:
        return cls(calls=sum(r.llm_calls for r in results),
                   fresh_calls=sum(r.llm_calls - r.cached_calls for r in results),
                   tokens=sum(r.prompt_tokens + r.completion_tokens + r.cached_prompt_tokens
                              + r.cached_completion_tokens for r in results),
                   usd=sum(r.cost for r in results))

    def describe(self) -> str:
        usd = f", ${self.usd:.4f}" if self.usd else ""
        return (f"{self.calls} calls ({self.fresh_calls} fresh), {self.tokens:,} tokens{usd}, "
                f"{self.seconds / 60:.1f} min")


def _over(spend: Spend, limits: Limits) -> str | None:
    if limits.calls is not None and spend.calls >= limits.calls:
        return f"calls {spend.calls}/{limits.calls}"
    if limits.tokens is not None and spend.tokens >= limits.tokens:
        return f"tokens {spend.tokens}/{limits.tokens}"
    if limits.usd is not None and spend.usd >= limits.usd:
        return f"usd {spend.usd:.4f}/{limits.usd}"
    if limits.minutes is not None and spend.seconds >= limits.minutes * 60:
        return f"minutes {spend.seconds / 60:.1f}/{limits.minutes}"
    return None


def _left_calls(spend: Spend, limits: Limits) -> float:
    return float("inf") if limits.calls is None else limits.calls - spend.calls


@dataclass
class Ledger:
    config: BudgetConfig
    spent: dict[str, Spend] = field(default_factory=lambda: {r: Spend() for r in ROLES})
    seconds_before: float = 0.0  # wall time of earlier sessions of this run

    def charge(self, role: Role, spend: Spend) -> None:
        self.spent[role].add(spend)

    def total(self) -> Spend:
        out = Spend()
        for s in self.spent.values():
            out.add(s)
        return out

    def exhausted(self, role: Role | None = None, *, seconds: float = 0.0) -> str | None:
        """Why the run (or ``role``) may spend no more, or None. ``seconds``: wall time so far this session."""
        total = self.total()
        total.seconds = self.seconds_before + seconds
        why = _over(total, self.config.total)
        if why:
            return f"total budget spent ({why})"
        for r in (role,) if role else ROLES:
            why = _over(self.spent[r], getattr(self.config, r))
            if why:
                return f"{r} budget spent ({why})"
        return None

    def calls_left(self, role: Role) -> float:
        return min(_left_calls(self.total(), self.config.total),
                   _left_calls(self.spent[role], getattr(self.config, role)))

    def fits(self, role: Role, calls: float) -> bool:
        """Whether ``calls`` more calls of ``role`` stay within every call cap."""
        return calls <= self.calls_left(role)

    def report(self, *, seconds: float = 0.0) -> dict[str, Any]:
        total = self.total()
        total.seconds = self.seconds_before + seconds
        return {"total": asdict(total), **{r: asdict(self.spent[r]) for r in ROLES},
                "limits": self.config.model_dump(mode="json")}
