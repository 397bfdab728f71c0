"""A tiny evolve on the real local model, executor and optimizer alike: it completes, writes its
report, and a resume of the finished run makes no new model call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentforge.evolve.config import BudgetConfig, EvolveConfig, SplitConfig
from agentforge.evolve.loop import aevolve
from agentforge.evolve.store import RunStore

pytestmark = pytest.mark.local_model

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
async def test_a_tiny_evolve_on_the_local_model_completes_reports_and_resumes(tmp_path: Path) -> None:
    config = EvolveConfig(
        optimizers=("reflect",), optimizer_model="local", seed=0, minibatch=4, candidates_per_generation=2,
        splits=SplitConfig(train=12, val=6, test=6, min_val=4, min_test=4),
        budget=BudgetConfig(generations=2), runs_dir=tmp_path / "runs",
        optimizer_options={"reflect": {"sampling": [], "candidates": 2}})
    result = await aevolve(REPO / "workflows" / "arithmetic_plain.yaml", "arithmetic", config)
    assert result.generations == 2 or result.stop_reason.startswith("converged")
    assert result.spent["executor"]["fresh_calls"] > 0 and result.spent["optimizer"]["calls"] > 0
    store = RunStore.open(result.folder)
    rows = store.candidates()
    store.close()
    assert len(rows) >= 2  # the seed and at least one proposal, each with its outcome
    assert (result.folder / "best.yaml").is_file()

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "agentforge.cli"]
    report = subprocess.run([*cli, "report", str(result.folder)], capture_output=True, text=True, env=env,
                            timeout=120)
    assert report.returncode == 0, report.stderr
    assert Path(report.stdout.strip()).is_file()

    resumed = subprocess.run([*cli, "evolve", "--resume", str(result.folder), "--json", "--plain"],
                             capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    again = json.loads(resumed.stdout)
    assert again["best"] == result.best.hash and again["best_test"] == result.best_test
    assert again["new_calls"] == 0  # the replay read every evaluation back and every proposal from cache
    assert again["spent"]["total"]["calls"] == result.spent["total"]["calls"]
