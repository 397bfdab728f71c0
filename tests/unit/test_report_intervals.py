"""Intervals that stay honest at small n (Wilson for 0/1 scores), with n stated beside every interval."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentforge.cli import app
from agentforge.evaluation.report import EvalReport, TaskResult, score_interval, t_quantile, wilson_interval


def report_of(scores: list[float]) -> EvalReport:
    results = [TaskResult(task_id=f"t{i}", split="val", score=s) for i, s in enumerate(scores)]
    return EvalReport(eval_id="e", workflow="w", workflow_hash="h", env="env", split="val", results=results)


@pytest.mark.parametrize("scores", [[1.0], [0.0], [1.0] * 5, [0.0] * 5, [0.5], [0.7, 0.7, 0.7]])
def test_one_score_or_all_equal_scores_never_give_a_zero_width_interval(scores: list[float]) -> None:
    low, high = report_of(scores).ci
    assert 0.0 <= low <= high <= 1.0
    assert high - low > 0.1  # a handful of agreeing tasks is not certainty
    assert low <= sum(scores) / len(scores) <= high


def test_wilson_matches_the_textbook_values() -> None:
    # n = 1, one success: [0.2065, 1]; 0 of 10: [0, 0.2775]; 5 of 10: [0.2366, 0.7634].
    assert wilson_interval(1, 1) == pytest.approx((0.2065, 1.0), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)


def test_binary_scores_use_wilson() -> None:
    assert score_interval([1.0, 0.0, 1.0, 1.0]) == wilson_interval(3, 4)


@pytest.mark.parametrize(("df", "table"), [(1, 12.706), (2, 4.303), (3, 3.182), (5, 2.571), (10, 2.228),
                                           (30, 2.042), (100, 1.984)])
def test_t_quantiles_match_the_table(df: int, table: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(table, rel=3e-3)


def test_intervals_narrow_with_more_data_and_cover_the_mean() -> None:
    rng = random.Random(0)
    small = [rng.random() for _ in range(10)]
    large = [rng.random() for _ in range(1000)]
    lo_s, hi_s = score_interval(small)
    lo_l, hi_l = score_interval(large)
    assert lo_s < sum(small) / 10 < hi_s and lo_l < sum(large) / 1000 < hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 5


def test_intervals_cover_the_true_mean_about_95_percent_of_the_time() -> None:
    rng = random.Random(1)
    hits = 0
    for _ in range(400):
        scores = [float(rng.random() < 0.3) for _ in range(20)]
        low, high = score_interval(scores)
        hits += low <= 0.3 <= high
    assert hits / 400 >= 0.92


def test_summary_states_n_beside_the_interval() -> None:
    summary = report_of([1.0]).summary()
    assert summary["n"] == 1 and summary["ci95"][1] - summary["ci95"][0] > 0.5


WORKFLOW = """
version: 1
name: capitals
inputs: {question: str}
outputs: {answer: str}
nodes:
  - {id: ask, kind: agent, prompt: "{question}", inputs: [question], outputs: [answer]}
"""


def test_the_cli_prints_mean_interval_and_n(tmp_path: Path, scripted: Any) -> None:
    model, script = scripted
    script.default = "Paris"
    path = tmp_path / "capitals.yaml"
    path.write_text(textwrap.dedent(WORKFLOW))
    result = CliRunner().invoke(app, ["eval", str(path), "--env", "capitals", "--limit", "1", "--model", model])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "mean score" in line)
    assert "(n=1" in line and "[" in line and "]" in line
    low, high = (float(x) for x in line.split("[")[1].split("]")[0].split(","))
    assert high - low > 0.5
