"""What an evaluation found: one ``TaskResult`` per task and the aggregates a reader wants first."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from agentforge.runtime.trace import Trace


class TaskError(BaseModel):
    """Why a task failed, typed: a stable ``code`` (an ``AgentforgeError`` code, or one of the evaluator's
    own: ``empty_output``, ``no_output``, ``unparsable_answer``, ``unexpected``, ``task_failed``; or an
    executor's: ``worker_lost`` (its worker process died mid-episode), ``not_run`` (no worker was left to run
    it)), the node it happened in when known, and the message."""

    model_config = ConfigDict(frozen=True)

    code: str
    message: str
    node: str | None = None
    exception: str | None = Field(default=None, description="The exception class, when one was raised.")

    @property
    def text(self) -> str:
        """One readable line, as the CLI and the JSON report show it."""
        return f"{self.exception or self.code}: {self.message}"


class TaskResult(BaseModel):
    """One task's outcome and its evidence: what the workflow saw, what ran (the traces, one per step), what
    the environment and its metric said, and a typed error. Secret fields never get here (see
    ``Environment.secret_fields``). Plain data, so it pickles and travels as JSON between processes."""

    task_id: str
    split: str
    score: float = 0.0
    reward: float = 0.0
    steps: int = 0
    actions: list[str] = Field(default_factory=list)
    inputs: dict[str, Any] = Field(default_factory=dict, description="The task inputs the workflow saw.")
    traces: list[Trace] = Field(default_factory=list, description="One workflow run per step, in order.")
    info: dict[str, Any] = Field(default_factory=dict, description="The last step's info, minus secret fields.")
    feedback: str | None = Field(default=None, description="What the metric said about the answer.")
    failure: TaskError | None = None
    notes: list[str] = Field(default_factory=list, description="What the evaluator changed on the way, e.g. a "
                                                              "multi-turn history cut to its token cap.")
    prompt_tokens: int = Field(default=0, description="Fresh (spent) prompt tokens; cached calls are apart.")
    completion_tokens: int = 0
    reused_prompt_tokens: int = Field(default=0, description="Of prompt_tokens, those read from a prefix cache "
                                                             "(saved prefixes, provider prompt caching).")
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    cost: float = Field(default=0.0, description="Spent on fresh calls.")
    cached_cost: float = Field(default=0.0, description="What the cached calls cost when they first ran.")
    latency_s: float = 0.0
    llm_calls: int = 0
    cached_calls: int = 0
    trace_path: str | None = None
    spec_hash: str | None = Field(default=None, description="The workflow that ran this task.")

    @model_validator(mode="before")
    @classmethod
    def _error_text(cls, data: Any) -> Any:
        """Accept a bare ``error`` text (as a worker that lost a task reports it) as a ``task_failed`` record."""
        if isinstance(data, dict) and "error" in data:
            data = dict(data)
            text = data.pop("error")
            if text is not None and data.get("failure") is None:
                data["failure"] = TaskError(code="task_failed", message=str(text))
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def error(self) -> str | None:
        """The failure as one readable line (None when the task ran cleanly)."""
        return self.failure.text if self.failure is not None else None

    @property
    def ok(self) -> bool:
        return self.failure is None


def bootstrap_ci(scores: Sequence[float], *, resamples: int = 2000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean; seeded, so a report is reproducible."""
    n = len(scores)
    if n == 0:
        return (0.0, 0.0)
    if n == 1 or min(scores) == max(scores):
        return (float(scores[0]), float(scores[0])) if n == 1 else (float(min(scores)), float(max(scores)))
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(scores, k=n)) / n for _ in range(resamples))
    tail = (1 - confidence) / 2
    return (means[math.floor(tail * (resamples - 1))], means[math.ceil((1 - tail) * (resamples - 1))])


def wilson_interval(successes: float, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion: never zero width, even at n = 1 or 0/n and n/n."""
    if n <= 0:
        return (0.0, 1.0)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes <= 0 else max(0.0, centre - half)  # exact ends: rounding must not leave 0/n out
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return (low, high)


def t_quantile(p: float, df: int) -> float:
    """Student-t quantile: exact for 1 and 2 degrees of freedom, a four-term Cornish-Fisher expansion
    beyond (within 0.3% of the table at df 3, closer as df grows)."""
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        a = 2 * p - 1
        return a * math.sqrt(2 / (1 - a * a))
    z = NormalDist().inv_cdf(p)
    return (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3)
            + (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / (92160 * df ** 4))


def score_interval(scores: Sequence[float], *, confidence: float = 0.95) -> tuple[float, float]:
    """An interval for the mean score that stays honest at small n.

    0/1 scores: the Wilson interval. Other scores in [0, 1]: a Student-t interval whose spread is at
    least ``sqrt(m (1 - m)) / sqrt(n)`` (so n = 1, or scores that all agree, never give zero width; the
    floor fades as 1/n), clipped to [0, 1]. No scores: the whole range.
    """
    n = len(scores)
    if n == 0:
        return (0.0, 1.0)
    mean = sum(scores) / n
    if all(s in (0.0, 1.0) for s in scores):
        return wilson_interval(sum(scores), n, confidence=confidence)
    if n == 1:
        return wilson_interval(mean, 1, confidence=confidence)
    sd = math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1))
    floor = math.sqrt(max(0.0, mean * (1 - mean))) / math.sqrt(n)
    half = t_quantile(0.5 + confidence / 2, n - 1) * max(sd, floor) / math.sqrt(n)
    return (max(0.0, mean - half), min(1.0, mean + half))


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class EvalReport(BaseModel):
    eval_id: str
    workflow: str
    workflow_hash: str
    specs: dict[str, str] = Field(default_factory=dict, description="Every spec that ran: hash -> name.")
    env: str
    split: str
    model: str | None = None
    executor: str = "asyncio"
    concurrency: int = 1
    seed: int = 0
    started_at: float = 0.0
    wall_s: float = 0.0
    results: list[TaskResult] = Field(default_factory=list)
    aborted: str | None = None
    traces_path: str | None = None

    # -- aggregates ----------------------------------------------------------------------------
    @property
    def scores(self) -> list[float]:
        return [r.score for r in self.results]

    @property
    def mean_score(self) -> float:
        return sum(self.scores) / len(self.results) if self.results else 0.0

    @property
    def ci(self) -> tuple[float, float]:
        """95% interval of the mean score (see ``score_interval``); read it with ``n``."""
        return score_interval(self.scores)

    @property
    def errors(self) -> int:
        return sum(1 for r in self.results if r.failure is not None)

    @property
    def llm_calls(self) -> int:
        return sum(r.llm_calls for r in self.results)

    @property
    def cached_calls(self) -> int:
        return sum(r.cached_calls for r in self.results)

    @property
    def cost(self) -> float:
        return sum(r.cost for r in self.results)

    def summary(self) -> dict[str, Any]:
        """The aggregates a reader wants first. Tokens and cost are fresh (spent) ones; cached calls are
        counted apart, so a cached re-run reports 0 fresh tokens and 0 cost. Fresh prompt tokens split into
        ``processed_prompt_tokens`` (evaluated) and ``reused_prompt_tokens`` (read from a prefix cache)."""
        latencies = [r.latency_s for r in self.results]
        costs = [r.cost for r in self.results]
        low, high = self.ci
        prompt = sum(r.prompt_tokens for r in self.results)
        reused = sum(r.reused_prompt_tokens for r in self.results)
        return {
            "eval_id": self.eval_id,
            "workflow": self.workflow,
            "env": self.env,
            "split": self.split,
            "model": self.model,
            "tasks": len(self.results),
            "n": len(self.results),
            "mean_score": round(self.mean_score, 4),
            "ci95": [round(low, 4), round(high, 4)],
            "errors": self.errors,
            "error_codes": self.error_codes,
            "llm_calls": self.llm_calls,
            "cached_calls": self.cached_calls,
            "new_llm_calls": self.llm_calls - self.cached_calls,
            "prompt_tokens": prompt,
            "processed_prompt_tokens": prompt - reused,
            "reused_prompt_tokens": reused,
            "completion_tokens": sum(r.completion_tokens for r in self.results),
            "cached_prompt_tokens": sum(r.cached_prompt_tokens for r in self.results),
            "cached_completion_tokens": sum(r.cached_completion_tokens for r in self.results),
            "cost": self.cost,
            "cached_cost": sum(r.cached_cost for r in self.results),
            "cost_p50": percentile(costs, 50),
            "cost_p90": percentile(costs, 90),
            "latency_p50_s": round(percentile(latencies, 50), 4),
            "latency_p90_s": round(percentile(latencies, 90), 4),
            "latency_p99_s": round(percentile(latencies, 99), 4),
            "wall_s": round(self.wall_s, 3),
            "tasks_per_s": round(len(self.results) / self.wall_s, 2) if self.wall_s else None,
            "aborted": self.aborted,
        }

    @property
    def error_codes(self) -> dict[str, int]:
        """How many tasks failed with each error code."""
        counts: dict[str, int] = {}
        for r in self.results:
            if r.failure is not None:
                counts[r.failure.code] = counts.get(r.failure.code, 0) + 1
        return counts

    def to_json(self, *, traces: bool = False) -> dict[str, Any]:
        """JSON data with the summary; the per-task traces only on request (a sink keeps them apart)."""
        data = self.model_dump(mode="json", exclude=None if traces else {"results": {"__all__": {"traces"}}})
        data["summary"] = self.summary()
        return data

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2), encoding="utf-8")
        return path
