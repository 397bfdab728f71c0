"""Kill a real ``agentforge run`` at random points (SIGINT, SIGKILL, SIGTERM), then ``--resume`` it.

The workflow is a chain of tool nodes; each sleeps a little, then appends its name to a log file, so
"each finished node ran exactly once" is checked from outside the process. Every seed must end in a
finished resume (nodes finished before the kill not run again, at most the in-flight one twice) or in
a clear one-line message; never a traceback. The resumed trace lists every node once, keeping the records
of the nodes that finished before the kill, even a SIGKILL that left no trace.json.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

NODES = ("a", "b", "c", "d")
PAUSE = 0.15

STEP_TOOL = """\
import time


def step(name: str, log: str, pause: float) -> str:
    \"\"\"Sleep, then record that this node ran.\"\"\"
    time.sleep(pause)
    with open(log, "a", encoding="utf-8") as f:
        f.write(name + "\\n")
    return name
"""

CHAIN = f"""\
version: 1
kind: workflow
name: kill-chain
tools: {{step: "kill_steps:step"}}
inputs: {{log: str}}
outputs: {{d: str}}
nodes:
  - {{id: a, kind: tool, tool: step, args: {{name: a, log: "{{log}}", pause: {PAUSE}}}, inputs: [log], outputs: [a]}}
  - {{id: b, kind: tool, tool: step, args: {{name: b, log: "{{log}}", pause: {PAUSE}}}, inputs: [a, log], outputs: [b]}}
  - {{id: c, kind: tool, tool: step, args: {{name: c, log: "{{log}}", pause: {PAUSE}}}, inputs: [b, log], outputs: [c]}}
  - {{id: d, kind: tool, tool: step, args: {{name: d, log: "{{log}}", pause: {PAUSE}}}, inputs: [c, log], outputs: [d]}}
edges:
  - {{from: a, to: b}}
  - {{from: b, to: c}}
  - {{from: c, to: d}}
"""

RESUME_LINE = re.compile(r"^interrupted; resume with: agentforge run --resume (\S+)$")
NOTHING_LINES = ("interrupted before the run started; nothing to resume", "interrupted")
# One signal per seed: SIGINT and SIGKILL alternate, and every fifth seed is a SIGTERM.
SEEDS = 12


def agentforge(root: Path, *args: str) -> subprocess.Popen[str]:
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "AGENTFORGE_RUNS": str(root / "runs"), "PYTHONPATH": path,
           "AGENTFORGE_HOME": str(root / "home")}
    return subprocess.Popen([sys.executable, "-m", "agentforge.cli", *args], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def saved_runs(root: Path) -> list[Path]:
    return sorted((root / "runs").glob("*/run.json"))


def log_lines(root: Path) -> list[str]:
    path = root / "log.txt"
    return path.read_text(encoding="utf-8").split() if path.is_file() else []


def no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text and "Event loop is closed" not in text, text


def kill_at_random(root: Path, rng: random.Random, signum: int) -> tuple[int, str]:
    """Start a run, wait for a random point, send ``signum``; returns (exit code, stderr). The point is
    mostly among the nodes (after the first one's line), else between the record and the first checkpoint
    (the graph is still being built). Not before the record: a signal during the interpreter's own start-up
    gets Python's traceback before any agentforge code runs, and there is no run to resume then."""
    proc = agentforge(root, "run", "chain.yaml", "-i", f"log={root / 'log.txt'}")
    where = rng.random()

    def wait_for(ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 60
        while not ready() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)

    if where < 0.6:
        wait_for(lambda: bool(log_lines(root)))
        time.sleep(rng.uniform(0, PAUSE * len(NODES)))
    else:
        wait_for(lambda: bool(saved_runs(root)))
        time.sleep(rng.uniform(0, 1.0))
    if proc.poll() is None:
        proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    no_traceback(out, err)
    return proc.returncode, err


def check_seed(root: Path, seed: int) -> str:
    rng = random.Random(seed)
    signum = signal.SIGTERM if seed % 5 == 4 else (signal.SIGINT, signal.SIGKILL)[seed % 2]
    (root / "kill_steps.py").write_text(STEP_TOOL, encoding="utf-8")
    (root / "chain.yaml").write_text(CHAIN, encoding="utf-8")
    code, err = kill_at_random(root, rng, signum)
    runs = saved_runs(root)
    if code == 0 or (code == -signum and runs and json.loads(runs[0].read_text())["status"] == "succeeded"):
        return "finished before the signal"  # or it landed while the process was exiting
    if signum == signal.SIGKILL:
        assert code == -signal.SIGKILL
        if not runs:
            return "killed before the run started"
        run_id = runs[0].parent.name
    else:
        assert code == 128 + signum, (code, err)
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err  # exactly one line, nothing else
        match = RESUME_LINE.match(lines[0])
        if match is None:
            assert lines[0] in NOTHING_LINES, lines[0]
            assert not runs or json.loads(runs[0].read_text())["status"] != "running"
            return "stopped before the run started"
        run_id = match.group(1)
        assert json.loads(runs[0].read_text())["status"] in ("interrupted", "succeeded")
    before = log_lines(root)
    was_done = json.loads(runs[0].read_text())["status"] == "succeeded"  # killed after saving, before exit
    trace_path = root / "runs" / run_id / "trace.json"
    finished = ([n["node"] for n in json.loads(trace_path.read_text())["nodes"] if n["error"] is None]
                if signum != signal.SIGKILL else [])
    assert finished == list(NODES[:len(finished)])
    assert set(finished) <= set(before)

    resumed_at = time.time()
    resumed = agentforge(root, "run", "--resume", run_id, "--json")
    out, err = resumed.communicate(timeout=120)
    no_traceback(out, err)
    assert resumed.returncode == 0, (out, err)
    data = json.loads(out)
    assert data["outputs"] == {"d": "d"}
    after = log_lines(root)
    for node in NODES:
        assert 1 <= after.count(node) <= 2, after
    # Every node that finished before the kill ran once: only the one in flight may have run twice.
    for node in (*finished, *before[:-1]):
        assert after.count(node) == 1, (node, before, after)
    assert sum(after.count(node) == 2 for node in NODES) <= 1, after
    trace = json.loads(Path(data["trace_path"]).read_text())
    assert trace["status"] == "succeeded" and trace["resumed"] is not was_done
    # Whatever the signal (a SIGKILL saves no trace.json), the killed attempt's finished nodes are kept:
    # every node listed exactly once, in order, none with an error.
    assert [(n["node"], n["error"]) for n in trace["nodes"]] == [(node, None) for node in NODES]
    kept = [n["node"] for n in trace["nodes"] if n["started_at"] < resumed_at]
    assert kept == list(NODES[:len(kept)]) and set(finished) <= set(kept)
    # A node whose successor had started had been checkpointed: its record must come from the killed attempt.
    assert set(before[:-1]) <= set(kept), (before, kept)
    for node in kept:  # and each node kept from the killed attempt ran exactly once
        assert after.count(node) == 1, (node, kept, after)
    return f"resumed after {len(before)} node(s), {len(kept)} kept"


@pytest.mark.timeout(240)
def test_kill_at_random_points_then_resume(tmp_path: Path) -> None:
    def one(seed: int) -> str:
        root = tmp_path / f"seed{seed}"
        root.mkdir()
        try:
            return check_seed(root, seed)
        except AssertionError as exc:
            raise AssertionError(f"seed {seed}: {exc}") from exc

    with ThreadPoolExecutor(2) as pool:  # two runs at a time: most of a seed is process start-up
        outcomes = list(pool.map(one, range(SEEDS)))
    # The random points must land inside runs, not only before or after them.
    assert sum(o.startswith("resumed") for o in outcomes) >= SEEDS // 2, outcomes
