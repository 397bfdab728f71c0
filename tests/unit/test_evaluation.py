"""The evaluator on small in-test environments, with the scripted model."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agentforge.envs.base import Environment, LocalSession, Observation, StepResult, Task, assign_splits
from agentforge.errors import InputError, LLMError
from agentforge.evaluation.evaluator import TraceSink, aevaluate, evaluate, format_history
from agentforge.evaluation.report import bootstrap_ci, percentile
from agentforge.llm.base import LLMRequest, RawCompletion
from agentforge.llm.scripted import register_script
from agentforge.runtime.workflow import Workflow
from agentforge.workflow.loader import spec_from_text
from tests.unit.sample_envs import QASession
from tests.unit.sample_workflows import POLICY
from tests.unit.sample_workflows import QA as QA_WORKFLOW


class QAEnv(Environment):
    name = "qa"
    instruction = "Answer the question."

    def __init__(self, n: int = 10) -> None:
        ids = [f"q{i}" for i in range(n)]
        splits = assign_splits(ids, {"train": 0.5, "val": 0.5}, seed=0)
        super().__init__([Task(id=i, split=splits[i], inputs={"question": f"what is {k}+{k}?"}, answer=2 * k)
                          for k, i in enumerate(ids)])

    def session(self) -> QASession:
        return QASession(self)


class CounterSession(LocalSession):
    """Reach the target count with 'inc'; 'dec' goes down. Reward 1 on reaching it."""

    def _reset(self, task: Task) -> Observation:
        self.count = 0
        return Observation(text="count 0", available_actions=("inc", "dec"))

    def _step(self, action: str) -> StepResult:
        assert self.task is not None
        self.count += {"inc": 1, "dec": -1}.get(action.strip(), 0)
        hit = self.count == self.task.answer
        return StepResult(observation=Observation(text=f"count {self.count}", available_actions=("inc", "dec")),
                          reward=float(hit), done=hit)


class CounterEnv(Environment):
    name = "counter"
    instruction = "Reach the target count."
    multi_turn = True
    max_steps = 5

    def __init__(self) -> None:
        super().__init__([Task(id=f"t{k}", split="val", answer=k) for k in (1, 3, 9)])

    def session(self) -> CounterSession:
        return CounterSession(self)





def workflow(text: str) -> Workflow:
    return Workflow(spec_from_text(textwrap.dedent(text)))


def answer_even_questions(request: LLMRequest) -> str:
    k = int(request.prompt_text().split("what is ")[1].split("+")[0])
    return str(2 * k) if k % 2 == 0 else "no idea"


def test_single_turn_scores_each_task_and_aggregates(scripted: Any) -> None:
    model, script = scripted
    script.default = answer_even_questions
    env = QAEnv(10)
    report = evaluate(workflow(QA_WORKFLOW), env, split="val", model=model)
    val = [t for t in env.tasks("val")]
    assert [r.task_id for r in report.results] == [t.id for t in val]  # stable task order
    expected = [1.0 if t.answer % 4 == 0 else 0.0 for t in val]
    assert [r.score for r in report.results] == expected
    assert report.mean_score == pytest.approx(sum(expected) / len(expected))
    low, high = report.ci
    assert low <= report.mean_score <= high
    assert report.llm_calls == len(val) and report.errors == 0
    summary = report.summary()
    assert summary["tasks"] == len(val) and summary["latency_p90_s"] >= summary["latency_p50_s"]


def test_failed_task_scores_zero_and_keeps_its_error_and_trace(scripted: Any, tmp_path: Path) -> None:
    model, script = scripted
    script.on("what is 2\\+2", LLMError("model refused"))
    script.default = answer_even_questions
    report = evaluate(workflow(QA_WORKFLOW), QAEnv(6), split=None, model=model, sink=TraceSink(tmp_path / "runs"))
    failed = [r for r in report.results if r.error]
    assert len(failed) == 1 and "model refused" in (failed[0].error or "")
    assert failed[0].score == 0.0
    assert failed[0].traces[0].status == "failed"  # in memory, and in the sink's file below
    path, _, task_id = (failed[0].trace_path or "").partition("#")
    with open(path) as fh:
        records = {json.loads(line)["task_id"]: json.loads(line) for line in fh}
    assert records[task_id]["steps"][0]["status"] == "failed"
    assert len(records) == 6


class BrokenSession(QASession):
    def _step(self, action: str) -> StepResult:
        assert self.task is not None
        if self.task.id == "q2":
            raise KeyError("score table")  # an environment bug that hits one task
        return super()._step(action)


class BrokenEnv(QAEnv):
    def session(self) -> QASession:
        return BrokenSession(self)


def test_an_environment_bug_in_one_task_fails_that_task_and_keeps_the_rest(scripted: Any) -> None:
    model, script = scripted
    script.default = answer_even_questions
    report = evaluate(workflow(QA_WORKFLOW), BrokenEnv(6), split=None, model=model)
    assert len(report.results) == 6
    (broken,) = [r for r in report.results if r.error]
    assert broken.task_id == "q2" and broken.score == 0.0
    assert broken.error is not None and broken.error.startswith("KeyError") and "score table" in broken.error
    assert report.mean_score == pytest.approx(2 / 6)  # q0 and q4 right; q2 would have been, but crashed


def test_rerunning_the_same_evaluation_costs_no_new_llm_calls(scripted: Any) -> None:
    model, script = scripted
    script.default = answer_even_questions
    wf = workflow(QA_WORKFLOW)
    first = evaluate(wf, QAEnv(10), split=None, model=model)
    calls = len(script.calls)
    second = evaluate(wf, QAEnv(10), split=None, model=model)
    assert len(script.calls) == calls
    assert second.cached_calls == second.llm_calls == 10
    assert second.scores == first.scores


def test_sampled_calls_are_cached_during_an_evaluation_only_when_seeded(scripted: Any) -> None:
    model, script = scripted
    script.default = answer_even_questions
    seeded = workflow(QA_WORKFLOW.replace("outputs: [answer]}", "outputs: [answer], temperature: 0.9, seed: 3}"))
    evaluate(seeded, QAEnv(4), split=None, model=model)
    calls = len(script.calls)
    evaluate(seeded, QAEnv(4), split=None, model=model)
    assert len(script.calls) == calls  # reproducible: the re-run is served by the cache
    # Unseeded sampling: every evaluation draws fresh samples, so repeated evaluations are independent.
    unseeded = workflow(QA_WORKFLOW.replace("outputs: [answer]}", "outputs: [answer], temperature: 0.9}"))
    evaluate(unseeded, QAEnv(4), split=None, model=model)
    calls = len(script.calls)
    again = evaluate(unseeded, QAEnv(4), split=None, model=model)
    assert len(script.calls) == calls + 4 and again.cached_calls == 0


def test_multi_turn_policy_sees_goal_observation_and_growing_history(scripted: Any) -> None:
    model, script = scripted
    script.default = "inc"
    report = evaluate(workflow(POLICY), CounterEnv(), split="val", model=model)
    by_id = {r.task_id: r for r in report.results}
    assert by_id["t1"].score == 1.0 and by_id["t1"].steps == 1
    assert by_id["t3"].score == 1.0 and by_id["t3"].actions == ["inc", "inc", "inc"]
    assert by_id["t9"].score == 0.0 and by_id["t9"].steps == 5  # the step limit ends it
    third_prompt = next(c for c in script.calls if "Now: count 2" in c.prompt_text()).prompt_text()
    assert "Reach the target count." in third_prompt
    assert "1. action: inc\n   result: count 1" in third_prompt


def test_a_workflow_that_cannot_bind_fails_before_any_task_runs(scripted: Any) -> None:
    model, script = scripted
    wf = workflow(QA_WORKFLOW.replace("inputs: {question: str}", "inputs: {question: str, context: str}")
                  .replace("inputs: [question]", "inputs: [question, context]")
                  .replace("Q: {question}", "Q: {question} {context}"))
    with pytest.raises(InputError, match="context"):
        evaluate(wf, QAEnv(4), model=model)
    assert script.calls == []


def test_unknown_split_is_a_clear_error(scripted: Any) -> None:
    model, _ = scripted
    with pytest.raises(InputError, match="no tasks in split 'test'"):
        evaluate(workflow(QA_WORKFLOW), QAEnv(4), split="test", model=model)


async def test_concurrency_limit_is_respected(scripted: Any) -> None:
    model, _ = scripted
    state = {"now": 0, "max": 0}

    class Slow:
        async def acomplete(self, request: LLMRequest) -> RawCompletion:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            await asyncio.sleep(0.01)
            state["now"] -= 1
            return RawCompletion(texts=("0",))

    register_script(model.split("/", 1)[1], Slow())  # type: ignore[arg-type]
    report = await aevaluate(workflow(QA_WORKFLOW), QAEnv(12), split=None, concurrency=3, model=model)
    assert state["max"] == 3 and len(report.results) == 12


def test_progress_callbacks_see_every_result(scripted: Any) -> None:
    model, script = scripted
    script.default = "0"
    seen: list[str] = []
    totals: list[int] = []
    evaluate(workflow(QA_WORKFLOW), QAEnv(6), split=None, model=model, on_result=lambda r: seen.append(r.task_id),
             on_start=totals.append)
    assert totals == [6] and sorted(seen) == sorted(f"q{i}" for i in range(6))


def test_bootstrap_interval_is_seeded_and_narrows_with_more_data() -> None:
    small = [1.0, 0.0] * 10
    large = [1.0, 0.0] * 500
    assert bootstrap_ci(small, seed=1) == bootstrap_ci(small, seed=1)
    lo_s, hi_s = bootstrap_ci(small)
    lo_l, hi_l = bootstrap_ci(large)
    assert lo_s < 0.5 < hi_s and lo_l < 0.5 < hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 3
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)
    assert bootstrap_ci([]) == (0.0, 0.0)


def test_percentiles_interpolate() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 90) == 5
    assert percentile([], 50) == 0.0


def test_history_is_numbered_and_shows_recent_steps_only() -> None:
    history = [(f"a{i}", f"o{i}") for i in range(20)]
    text = format_history(history, limit=3)
    assert text.startswith("18. action: a17") and "o19" in text and "a16" not in text
    assert format_history([]) == "(no actions yet)"


def test_a_remote_server_that_dies_mid_evaluation_leaves_the_finished_results(scripted: Any) -> None:
    from agentforge.envs.remote.client import RemoteEnv
    from agentforge.envs.remote.server import ServerThread

    model, script = scripted
    script.default = answer_even_questions
    server = ServerThread(QAEnv(8), port=0)
    url = server.start()
    env = RemoteEnv(url, "agentforge", timeout=2.0, retries=1, backoff=0.01)
    finished: list[str] = []

    def stop_after_three(result: Any) -> None:
        finished.append(result.task_id)
        if len(finished) == 3:
            server.stop()

    try:
        report = evaluate(workflow(QA_WORKFLOW), env, split=None, model=model, concurrency=1,
                          on_result=stop_after_three)
    finally:
        server.stop()
        env.close()
    assert len(report.results) == 8  # nothing is lost: every task has a result
    done, lost = report.results[:3], report.results[3:]
    assert all(r.error is None for r in done)
    assert [r.score for r in done] == [1.0, 0.0, 1.0]  # q0, q1, q2: even questions answered
    assert all(r.error and "EnvServerError" in r.error and r.score == 0.0 for r in lost)
