"""The Ray executor, with a real local Ray cluster on 127.0.0.1 started by the test."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentforge.errors import ConfigError
from agentforge.evaluation.evaluator import evaluate
from agentforge.evaluation.executors import AsyncioExecutor, RayExecutor
from tests.unit.calc_job import CALC_MEAN_SCORE, calc_setup

# Set before Ray loads its constants: a local cluster on loopback only, no usage reporting.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
ray = pytest.importorskip("ray")

@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_workers_rebuild_the_job_and_match_the_asyncio_results(tmp_path: Path, local_ray: None) -> None:
    wf, env_path = calc_setup(tmp_path)
    local = evaluate(wf, str(env_path), split=None, executor=AsyncioExecutor(), concurrency=4)
    remote = evaluate(wf, str(env_path), split=None, executor=RayExecutor(num_workers=2, chunk_size=5),
                      concurrency=4)
    assert remote.executor == "ray"
    assert [r.task_id for r in remote.results] == [r.task_id for r in local.results]
    assert remote.scores == local.scores
    assert remote.mean_score == pytest.approx(CALC_MEAN_SCORE)  # every third answer in the file is off by one
    workers = ray.nodes()
    assert all(n["NodeManagerAddress"] == "127.0.0.1" for n in workers)
    # Each episode's traces come back from the workers into this evaluation's traces.jsonl.
    assert remote.traces_path is not None
    records = {rec["task_id"]: rec for rec in map(json.loads, Path(remote.traces_path).read_text().splitlines())}
    assert sorted(records) == sorted(r.task_id for r in remote.results)
    for result in remote.results:
        assert result.trace_path == f"{remote.traces_path}#{result.task_id}"
        (step,) = records[result.task_id]["steps"]
        assert step["inputs"]["expression"] and step["status"] == "succeeded"


def test_ray_needs_an_environment_it_can_rebuild(tmp_path: Path, local_ray: None) -> None:
    from agentforge.envs.registry import load_env

    wf, env_path = calc_setup(tmp_path)
    env = load_env(env_path)
    with pytest.raises(ConfigError, match="YAML path or a built-in name"):
        evaluate(wf, env, split=None, executor=RayExecutor(num_workers=2))
