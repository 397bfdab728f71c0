"""The evaluation's garbage-collector tuning: raised while it runs, restored after, nesting-safe."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentforge.config import Settings
from agentforge.envs.registry import load_env
from agentforge.evaluation.evaluator import evaluate
from agentforge.evaluation.gc_tuning import relaxed_gc, tune_process_gc
from agentforge.runtime.workflow import Workflow
from tests.unit.calc_job import calc_setup


@pytest.fixture(autouse=True)
def default_thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_the_threshold_is_raised_inside_and_restored_after() -> None:
    with relaxed_gc(20_000):
        assert gc.get_threshold() == (20_000, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_nested_uses_restore_only_when_the_outermost_ends() -> None:
    with relaxed_gc(20_000):
        with relaxed_gc(50_000):
            assert gc.get_threshold()[0] == 20_000  # the outermost decides
        assert gc.get_threshold()[0] == 20_000
    assert gc.get_threshold() == (700, 10, 10)


def test_zero_and_lower_thresholds_leave_the_collector_alone() -> None:
    with relaxed_gc(0):
        assert gc.get_threshold() == (700, 10, 10)
    with relaxed_gc(100):
        assert gc.get_threshold() == (700, 10, 10)


def test_the_threshold_is_restored_when_the_body_raises() -> None:
    with pytest.raises(RuntimeError), relaxed_gc(20_000):
        raise RuntimeError("boom")
    assert gc.get_threshold() == (700, 10, 10)


def test_a_worker_process_keeps_its_tuning() -> None:
    tune_process_gc(30_000)
    assert gc.get_threshold() == (30_000, 10, 10)


@pytest.mark.parametrize("threshold", [0, 25_000])
def test_an_evaluation_runs_under_the_configured_threshold(tmp_path: Path, threshold: int) -> None:
    calc, env_path = calc_setup(tmp_path)
    settings = Settings(home=tmp_path, runs_dir=tmp_path / "runs", eval_gc_threshold=threshold)
    wf = Workflow(calc.spec, settings=settings)
    seen: list[Any] = []
    report = evaluate(wf, str(env_path), split="val",
                      on_result=lambda r: seen.append(gc.get_threshold()))
    val_tasks = load_env(env_path).tasks("val")  # how many the hash-based splits put in val
    assert report.errors == 0 and len(seen) == len(val_tasks) > 0
    assert {t[0] for t in seen} == {threshold or 700}
    assert gc.get_threshold() == (700, 10, 10)
