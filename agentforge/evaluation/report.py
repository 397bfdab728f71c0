"""What an evaluation found: one ``TaskResult`` per task and the aggregates a reader wants first."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field


class TaskResult(BaseModel):
    task_id: str
    split: str
    score: float = 0.0
    reward: float = 0.0
    steps: int = 0
    actions: list[str] = Field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency_s: float = 0.0
    llm_calls: int = 0
    cached_calls: int = 0
    error: str | None = None
    trace_path: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


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
        return bootstrap_ci(self.scores, seed=self.seed)

    @property
    def errors(self) -> int:
        return sum(1 for r in self.results if r.error)

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
        latencies = [r.latency_s for r in self.results]
        costs = [r.cost for r in self.results]
        low, high = self.ci
        return {
            "eval_id": self.eval_id,
            "workflow": self.workflow,
            "env": self.env,
            "split": self.split,
            "model": self.model,
            "tasks": len(self.results),
            "mean_score": round(self.mean_score, 4),
            "ci95": [round(low, 4), round(high, 4)],
            "errors": self.errors,
            "llm_calls": self.llm_calls,
            "cached_calls": self.cached_calls,
            "new_llm_calls": self.llm_calls - self.cached_calls,
            "prompt_tokens": sum(r.prompt_tokens for r in self.results),
            "completion_tokens": sum(r.completion_tokens for r in self.results),
            "cost": self.cost,
            "cost_p50": percentile(costs, 50),
            "cost_p90": percentile(costs, 90),
            "latency_p50_s": round(percentile(latencies, 50), 4),
            "latency_p90_s": round(percentile(latencies, 90), 4),
            "latency_p99_s": round(percentile(latencies, 99), 4),
            "wall_s": round(self.wall_s, 3),
            "tasks_per_s": round(len(self.results) / self.wall_s, 2) if self.wall_s else None,
            "aborted": self.aborted,
        }

    def to_json(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["summary"] = self.summary()
        return data

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2), encoding="utf-8")
        return path
