"""Kill an evolve run with SIGKILL mid-generation, resume it, and get what an uninterrupted run gets:
the same lineage, the same best and test score, and no model call made twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentforge.evolve.store import RunStore

REPO = Path(__file__).resolve().parents[2]


def _child(runs: Path, log: Path, home: Path, resume: Path | None = None) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "tests.unit.evolve_child", str(runs), str(log)] + ([str(resume)] if resume else [])
    env = {**os.environ, "AGENTFORGE_HOME": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _lineage(folder: Path) -> list[tuple[object, ...]]:
    store = RunStore.open(folder)
    try:
        return [(r["hash"], r["parent"], r["generation"], r["status"], r["stage"], r["val_score"], r["test_score"])
                for r in store.candidates()]
    finally:
        store.close()


def _generations_started(runs: Path) -> int:
    for path in runs.glob("evolve-*/run.sqlite"):
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                return con.execute("SELECT COUNT(*) FROM events WHERE type='generation_started'").fetchone()[0]
            finally:
                con.close()
        except sqlite3.Error:
            return 0
    return 0


def _calls(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.mark.timeout(300)
def test_a_run_killed_mid_generation_resumes_to_the_same_result_without_repeating_calls(tmp_path: Path) -> None:
    whole = _child(tmp_path / "whole", tmp_path / "whole.log", tmp_path / "home-whole")
    out, errors = whole.communicate(timeout=240)
    assert whole.returncode == 0, errors[-3000:]
    whole_folder, whole_best, whole_test, _ = out.split()
    whole_calls = _calls(tmp_path / "whole.log")

    runs, log, home = tmp_path / "cut", tmp_path / "cut.log", tmp_path / "home-cut"
    cut = _child(runs, log, home)
    deadline = time.monotonic() + 120
    while _generations_started(runs) < 3 and time.monotonic() < deadline and cut.poll() is None:
        time.sleep(0.02)
    time.sleep(0.15)  # into the generation: candidates are being evaluated
    assert cut.poll() is None, "the run finished before it could be killed"
    cut.send_signal(signal.SIGKILL)
    cut.wait(timeout=30)
    before_resume = _calls(log)
    folder = next(runs.glob("evolve-*"))
    assert not (folder / "best.yaml").exists()

    resumed = _child(runs, log, home, resume=folder)
    out, errors = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, errors[-3000:]
    _, best, test, _ = out.split()

    assert (best, test) == (whole_best, whole_test)
    assert _lineage(folder) == _lineage(Path(whole_folder))
    # Calls cut off in flight were never answered, so they may be asked again (at most `concurrency` = 2);
    # every answered call was cached or stored and is not repeated.
    assert _calls(log) <= whole_calls + 2, (before_resume, _calls(log), whole_calls)
    assert before_resume < whole_calls  # the kill really landed before the end
