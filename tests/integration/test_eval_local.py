"""Evaluation end to end on the real local model: a dataset environment and a multi-turn one."""

from __future__ import annotations

import pytest

from agentforge.evaluation.evaluator import evaluate
from agentforge.runtime.workflow import Workflow
from tests.conftest import WORKFLOWS

pytestmark = pytest.mark.local_model


def test_word_problems_score_above_zero_on_the_arithmetic_dataset_and_rerun_from_cache() -> None:
    wf = Workflow.from_yaml(WORKFLOWS / "word_problems.yaml")
    first = evaluate(wf, "arithmetic", split="val", limit=6, concurrency=2)
    assert len(first.results) == 6 and first.errors == 0
    assert first.mean_score > 0
    assert first.llm_calls == 6 and first.cached_calls == 0
    again = evaluate(wf, "arithmetic", split="val", limit=6, concurrency=2)
    assert again.scores == first.scores
    assert again.cached_calls == again.llm_calls == 6  # the re-run made no new LLM call


def test_sql_agent_solves_some_multi_turn_database_tasks() -> None:
    wf = Workflow.from_yaml(WORKFLOWS / "sql_agent.yaml")
    report = evaluate(wf, "sql", split="val", limit=6, concurrency=2)
    assert report.errors == 0
    assert report.mean_score > 0
    solved = [r for r in report.results if r.score == 1.0]
    assert all(r.actions[-1].lower().startswith("answer") for r in solved)
    assert any(a.lower().startswith("query") for r in solved for a in r.actions)


def test_worker_processes_each_run_the_local_model_and_agree_with_one_process() -> None:
    from agentforge.evaluation.executors import ProcessExecutor

    wf = Workflow.from_yaml(WORKFLOWS / "word_problems.yaml")
    with ProcessExecutor(workers=2) as pool:
        report = evaluate(wf, "arithmetic", split="val", limit=6, concurrency=2, executor=pool)
        assert set(pool.placements.values()) == set(pool.pids)  # both workers ran the model
    assert report.executor == "processes" and report.errors == 0
    assert report.mean_score > 0 and report.llm_calls == 6
    # Same prompts at temperature 0 in this process: served by the cache the workers wrote, same scores.
    local = evaluate(wf, "arithmetic", split="val", limit=6, concurrency=2)
    assert local.cached_calls == 6 and local.scores == report.scores
