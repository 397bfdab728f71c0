"""The evaluation job: a picklable record naming specs and environment, resolved to the caller's live
objects in process and rebuilt (once per job) by worker processes."""

from __future__ import annotations

import json
import pickle
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from agentforge.envs.base import Task
from agentforge.envs.registry import load_env
from agentforge.evaluation.evaluator import evaluate
from agentforge.evaluation.executors import AsyncioExecutor, ProcessExecutor
from agentforge.evaluation.job import EvalJob, bind, build_job, resolve
from agentforge.runtime.workflow import Workflow
from agentforge.tools import ToolRegistry, default_registry
from agentforge.workflow.loader import spec_from_text
from tests.unit.calc_job import CALC_WORKFLOW, calc_setup, write_env

SHOUT_WORKFLOW = """
version: 1
name: shout
inputs: {text: str}
outputs: {answer: str}
nodes:
  - {id: loud, kind: tool, tool: shout, args: {text: "{text}"}, inputs: [text], outputs: {answer: str}}
"""

# The calculator workflow with one more: right exactly where the calc environment's answers are off by one.
PLUS_ONE_WORKFLOW = CALC_WORKFLOW.replace("name: calc", "name: calc-plus-one").replace(
    'expression: "{expression}"', 'expression: "({expression}) + 1"')


@pytest.fixture(scope="module")
def executor() -> Iterator[ProcessExecutor]:
    with ProcessExecutor(workers=2) as started:
        yield started


def shout(text: str) -> str:
    """Upper-case the text."""
    return text.upper()


def test_the_job_is_a_frozen_picklable_record_that_names_the_environment_absolutely(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wf, env_path = calc_setup(tmp_path)
    monkeypatch.chdir(tmp_path)
    env = load_env("calc.yaml")
    job = build_job([wf], env, env_ref="calc.yaml", model="scripted/x")
    assert job.env is not None and job.env.ref == str(env_path.resolve())  # not relative to this cwd
    assert job.specs[wf.spec.hash].source_file == wf.spec.source_file and job.default == wf.spec.hash
    again = pickle.loads(pickle.dumps(job))
    assert again == job and again.build_key == job.build_key
    with pytest.raises(ValidationError):
        job.model = "other"  # type: ignore[misc]
    # The model and the assignment are not part of what a worker rebuilds.
    assert build_job([wf], env, env_ref="calc.yaml", model="scripted/y").build_key == job.build_key


def test_an_edited_data_file_is_a_different_job(tmp_path: Path) -> None:
    wf, env_path = calc_setup(tmp_path)
    before = build_job([wf], load_env(env_path), env_ref=env_path)
    rows = [{"id": f"e{i}", "expression": f"{i} + 1", "answer": i + 1} for i in range(24)]
    (tmp_path / "calc.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    after = build_job([wf], load_env(env_path), env_ref=env_path)
    assert before.env is not None and after.env is not None
    assert after.env.ref == before.env.ref and after.env.fingerprint != before.env.fingerprint
    assert after.build_key != before.build_key


def test_the_asyncio_executor_runs_the_callers_live_objects_and_a_worker_would_rebuild(tmp_path: Path) -> None:
    rows: list[dict[str, object]] = [{"id": f"t{i}", "text": f"word {i}", "answer": f"WORD {i}"} for i in range(4)]
    env_path = write_env(tmp_path, "words", "text", rows)
    tools: ToolRegistry = default_registry()
    tools.register(shout)  # only the caller has this tool: a rebuilt workflow would not
    wf = Workflow(spec_from_text(textwrap.dedent(SHOUT_WORKFLOW)), tools=tools)
    report = evaluate(wf, str(env_path), split=None, executor=AsyncioExecutor())
    assert report.errors == 0 and report.mean_score == 1.0

    env = load_env(env_path)
    job = build_job([wf], env, env_ref=env_path)
    with bind(job, [wf], env):
        live, rebuilt = resolve(job)
        assert live.workflow("t0") is wf and live.env is env and not rebuilt
    fresh, rebuilt = resolve(job)  # nothing bound: what a worker process does
    assert rebuilt and fresh.workflow("t0") is not wf and "shout" not in fresh.workflow("t0").tools
    assert resolve(job) == (fresh, False)  # kept for the next evaluation


def test_workers_run_the_spec_each_task_is_assigned_and_rebuild_the_job_once(
        tmp_path: Path, executor: ProcessExecutor) -> None:
    wf, env_path = calc_setup(tmp_path)
    plus_one = spec_from_text(textwrap.dedent(PLUS_ONE_WORKFLOW))

    def policy(task: Task) -> object:
        return plus_one if int(task.id[1:]) % 2 else wf.spec

    report = evaluate(wf, str(env_path), split=None, executor=executor, concurrency=4, policy=policy)  # type: ignore[arg-type]
    assert executor.rebuilt == 2  # each worker built both specs, once
    assert report.errors == 0 and len(report.results) == 24
    for result in report.results:
        i = int(result.task_id[1:])
        assert result.spec_hash == (plus_one.hash if i % 2 else wf.spec.hash)
        off_by_one = i % 3 == 0  # the environment's answer is one more than the expression
        assert result.score == (1.0 if off_by_one == bool(i % 2) else 0.0)
    again = evaluate(wf, str(env_path), split=None, executor=executor, concurrency=4, policy=policy)  # type: ignore[arg-type]
    assert executor.rebuilt == 0 and again.scores == report.scores


def test_workers_load_the_environment_wherever_the_caller_runs_from(
        tmp_path: Path, executor: ProcessExecutor, monkeypatch: pytest.MonkeyPatch) -> None:
    wf, _ = calc_setup(tmp_path)
    executor.start()  # the workers run from the directory the tests started in
    monkeypatch.chdir(tmp_path)
    report = evaluate(wf, "calc.yaml", split=None, executor=executor, concurrency=4)
    local = evaluate(wf, "calc.yaml", split=None, executor=AsyncioExecutor())
    assert report.errors == 0 and report.scores == local.scores


def test_a_job_without_an_environment_name_runs_only_in_process(tmp_path: Path) -> None:
    wf, env_path = calc_setup(tmp_path)
    env = load_env(env_path)
    job = build_job([wf], env)
    assert job.env is None and isinstance(pickle.loads(pickle.dumps(job)), EvalJob)
    report = evaluate(wf, env, split=None, executor=AsyncioExecutor())
    assert report.errors == 0


def test_the_executors_package_exports() -> None:
    import agentforge.evaluation.executors as executors

    assert sorted(executors.__all__) == ["AsyncioExecutor", "Executor", "OnResult", "ProcessExecutor", "RayExecutor",
                                         "split_slots"]
    assert {AsyncioExecutor.name, ProcessExecutor.name, executors.RayExecutor.name} == {"asyncio", "processes", "ray"}
