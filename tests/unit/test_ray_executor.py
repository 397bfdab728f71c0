"""The Ray executor, with a real local Ray cluster on 127.0.0.1 started by the test."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentforge.errors import ConfigError
from agentforge.evaluation.evaluator import TraceSink, evaluate
from agentforge.evaluation.executors import AsyncioExecutor, RayExecutor
from tests.unit.calc_job import CALC_MEAN_SCORE, calc_setup

if importlib.util.find_spec("ray") is None:  # not imported here: the executor starts Ray on loopback itself
    pytest.skip("Ray is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    ray = RayExecutor(num_workers=2).connect()
    yield ray
    ray.shutdown()


def test_ray_workers_rebuild_the_job_and_match_the_asyncio_results(tmp_path: Path, local_ray: Any) -> None:
    wf, env_path = calc_setup(tmp_path)
    local = evaluate(wf, str(env_path), split=None, executor=AsyncioExecutor(), concurrency=4)
    remote = evaluate(wf, str(env_path), split=None, executor=RayExecutor(num_workers=2, chunk_size=5),
                      concurrency=4, sink=TraceSink(tmp_path / "runs"))
    assert remote.executor == "ray"
    assert [r.task_id for r in remote.results] == [r.task_id for r in local.results]
    assert remote.scores == local.scores
    assert remote.mean_score == pytest.approx(CALC_MEAN_SCORE)  # every third answer in the file is off by one
    workers = local_ray.nodes()
    assert all(n["NodeManagerAddress"] == "127.0.0.1" for n in workers)
    # Each episode's traces come back from the workers into this evaluation's traces.jsonl.
    assert remote.traces_path is not None
    records = {rec["task_id"]: rec for rec in map(json.loads, Path(remote.traces_path).read_text().splitlines())}
    assert sorted(records) == sorted(r.task_id for r in remote.results)
    for result in remote.results:
        assert result.trace_path == f"{remote.traces_path}#{result.task_id}"
        (step,) = records[result.task_id]["steps"]
        assert step["inputs"]["expression"] and step["status"] == "succeeded"


def test_ray_needs_an_environment_it_can_rebuild(tmp_path: Path, local_ray: Any) -> None:
    from agentforge.envs.registry import load_env

    wf, env_path = calc_setup(tmp_path)
    env = load_env(env_path)
    with pytest.raises(ConfigError, match="YAML path or a built-in name"):
        evaluate(wf, env, split=None, executor=RayExecutor(num_workers=2))


def test_a_ray_imported_without_the_loopback_switch_is_refused_not_patched() -> None:
    # In a fresh interpreter: Ray imported first would put a local cluster on the routable address.
    code = ("import ray\nfrom agentforge.evaluation.executors import RayExecutor\n"
            "RayExecutor(num_workers=1).connect()\n")
    environ = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    done = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode != 0
    assert "Ray was imported before agentforge, so a local cluster would not stay on 127.0.0.1" in done.stderr


def test_a_local_cluster_refuses_a_switch_that_leaves_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "1")
    with pytest.raises(ConfigError, match="RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER is '1'"):
        RayExecutor(num_workers=1).connect()
