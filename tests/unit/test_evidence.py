"""Evaluation returns evidence in memory: inputs, traces, typed errors, info and feedback; nothing is written
unless a sink is given."""

from __future__ import annotations

import json
import pickle
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agentforge.config import get_settings
from agentforge.envs.base import Environment, LocalSession, Observation, StepResult, Task
from agentforge.envs.datasets.dataset import DatasetEnv
from agentforge.errors import LLMError
from agentforge.evaluation.evaluator import TraceSink, action_text, evaluate
from agentforge.evaluation.report import EvalReport, TaskResult
from agentforge.runtime.workflow import Workflow
from agentforge.workflow.loader import spec_from_text
from tests.unit.sample_workflows import QA

SILENT_CODE = """
version: 1
name: silent
inputs: {question: str}
outputs: {answer: str}
nodes:
  - {id: solve, kind: code, source: "x = 1", inputs: [question], outputs: {answer: str}}
"""

FLOAT_ANSWER = """
version: 1
name: typed
inputs: {question: str}
outputs: {answer: float}
nodes:
  - {id: ask, kind: agent, prompt: "Q: {question}", inputs: [question], outputs: {answer: float}}
"""


def workflow(text: str) -> Workflow:
    return Workflow(spec_from_text(textwrap.dedent(text)))


class GradedSession(LocalSession):
    """Scores 1 for the gold answer; an answer with no digits is one the metric cannot read."""

    def _reset(self, task: Task) -> Observation:
        return Observation(text=task.inputs["question"], fields=dict(task.inputs))

    def _step(self, action: str) -> StepResult:
        assert self.task is not None
        if not any(ch.isdigit() for ch in action):
            return StepResult(observation=Observation(text="unreadable"), reward=0.0, done=True, parsed=False,
                              feedback=f"no number in {action!r}", info={"metric": "graded"})
        ok = action.strip() == str(self.task.answer)
        feedback = "correct" if ok else f"expected another number than {action.strip()}"
        return StepResult(observation=Observation(text="scored"), reward=float(ok), done=True,
                          info={"metric": "graded", "correct": ok}, feedback=feedback)


class GradedEnv(Environment):
    name = "graded"

    def __init__(self) -> None:
        super().__init__([Task(id=f"t{k}", split="val", inputs={"question": f"{k}+{k}?"}, answer=2 * k)
                          for k in range(4)])

    def session(self) -> GradedSession:
        return GradedSession(self)


def doubling(request: Any) -> str:
    k = int(request.prompt_text().split("Q: ")[1].split("+")[0])
    return {0: "0", 1: "3", 2: "", 3: "many"}[k]


def test_evidence_is_in_memory_and_nothing_is_written(scripted: Any, tmp_path: Path) -> None:
    model, script = scripted
    script.default = doubling
    report = evaluate(workflow(QA), GradedEnv(), split="val", model=model)
    runs = get_settings().runs_dir
    assert not runs.exists() or not any(runs.iterdir())  # the evaluator wrote nothing
    assert report.traces_path is None
    by_id = {r.task_id: r for r in report.results}
    right, wrong, empty, unreadable = (by_id[f"t{k}"] for k in range(4))
    assert right.inputs == {"question": "0+0?"} and right.score == 1.0 and right.failure is None
    assert right.feedback == "correct" and right.info == {"metric": "graded", "correct": True}
    assert len(right.traces) == 1 and right.traces[0].nodes[0].node == "ask"
    assert right.traces[0].nodes[0].llm_calls[0].texts == ["0"]
    assert wrong.score == 0.0 and wrong.failure is None and wrong.feedback == "expected another number than 3"
    # An empty output is a typed error naming the node, scored 0, and the environment is not stepped with it.
    assert empty.score == 0.0 and empty.failure is not None
    assert (empty.failure.code, empty.failure.node) == ("empty_output", "ask")
    assert empty.steps == 0 and empty.error is not None and "answer" in empty.error
    # An answer the metric could not read is a typed error carrying the metric's feedback.
    assert unreadable.score == 0.0 and unreadable.failure is not None
    assert unreadable.failure.code == "unparsable_answer" and "no number in 'many'" in unreadable.failure.message
    assert report.errors == 2 and report.summary()["error_codes"] == {"empty_output": 1, "unparsable_answer": 1}


def test_a_code_node_that_prints_nothing_is_recorded(scripted: Any) -> None:
    model, _ = scripted
    report = evaluate(workflow(SILENT_CODE), GradedEnv(), split="val", model=model, limit=1)
    (result,) = report.results
    assert result.score == 0.0 and result.failure is not None
    assert (result.failure.code, result.failure.node) == ("no_output", "solve")
    assert "printed nothing" in result.failure.message
    assert result.traces[0].nodes[0].kind == "code"


def test_a_failed_node_is_a_typed_error_with_its_code_node_and_trace(scripted: Any) -> None:
    model, script = scripted
    script.default = LLMError("model refused")
    report = evaluate(workflow(QA), GradedEnv(), split="val", model=model, limit=1)
    (result,) = report.results
    assert result.failure is not None
    assert (result.failure.code, result.failure.node, result.failure.exception) == ("llm_error", "ask", "NodeError")
    assert "model refused" in result.failure.message and "model refused" in (result.error or "")
    assert result.traces and result.traces[0].status == "failed" and result.traces[0].nodes[0].error


def test_task_results_pickle_and_round_trip_as_json(scripted: Any) -> None:
    model, script = scripted
    script.default = doubling
    report = evaluate(workflow(QA), GradedEnv(), split="val", model=model)
    for result in report.results:
        assert pickle.loads(pickle.dumps(result)) == result
        again = TaskResult.model_validate_json(result.model_dump_json())
        assert again == result and again.error == result.error
    assert EvalReport.model_validate_json(report.model_dump_json()).results == report.results


def test_a_sink_gets_every_result_and_the_report(scripted: Any, tmp_path: Path) -> None:
    model, script = scripted
    script.default = doubling
    sink = TraceSink(tmp_path / "evals")
    seen: list[str] = []
    report = evaluate(workflow(QA), GradedEnv(), split="val", model=model, sink=sink,
                      on_result=lambda r: seen.append(r.trace_path or ""))
    assert report.traces_path == str(tmp_path / "evals" / report.eval_id / "traces.jsonl")
    lines = [json.loads(line) for line in Path(report.traces_path).read_text().splitlines()]
    assert sorted(r["task_id"] for r in lines) == ["t0", "t1", "t2", "t3"]
    assert all(line["steps"][0]["nodes"][0]["node"] == "ask" for line in lines)
    assert all(r.trace_path == f"{report.traces_path}#{r.task_id}" for r in report.results)
    assert sorted(seen) == sorted(r.trace_path for r in report.results)  # set before on_result sees it
    saved = json.loads((tmp_path / "evals" / report.eval_id / "report.json").read_text())
    assert saved["summary"]["tasks"] == 4 and "traces" not in saved["results"][0]


def test_an_integral_float_output_meets_an_integer_gold_answer(scripted: Any, tmp_path: Path) -> None:
    data = tmp_path / "sums.jsonl"
    data.write_text(json.dumps({"id": "a", "question": "2.5 + 2.5?", "answer": 5}) + "\n")
    env = DatasetEnv(data, metric="exact_match", splits={"val": 1.0})
    model, script = scripted
    script.default = "5.0"
    report = evaluate(workflow(FLOAT_ANSWER), env, split="val", model=model)
    (result,) = report.results
    assert result.traces[0].outputs == {"answer": 5.0}
    assert result.actions == ["5"] and result.score == 1.0 and result.failure is None


@pytest.mark.parametrize(("value", "text"), [
    (5.0, "5"), (5.5, "5.5"), (-0.0, "0"), ([1.0, 2.5], "[1, 2.5]"), ({"x": 3.0}, '{"x": 3}'), ("5.0", "5.0"),
    (7, "7"), (True, "true"),
])
def test_action_text_writes_integral_floats_as_integers(value: Any, text: str) -> None:
    assert action_text(value) == text


class FailingExecutor:
    """Finishes one task, then fails the way a lost cluster would."""

    name = "failing"

    async def amap(self, job: Any, tasks: Any, *, concurrency: int, on_result: Any = None) -> list[TaskResult]:
        if on_result is not None:
            on_result(TaskResult(task_id=tasks[0].id, split=tasks[0].split, score=1.0))
        raise LLMError("the cluster went away")


def test_an_evaluation_cut_short_still_closes_its_sink_with_an_aborted_report(scripted: Any, tmp_path: Path) -> None:
    model, _ = scripted
    with pytest.raises(LLMError, match="went away"):
        evaluate(workflow(QA), GradedEnv(), split="val", model=model, executor=FailingExecutor(),
                 sink=TraceSink(tmp_path / "evals"))
    (folder,) = (tmp_path / "evals").iterdir()
    saved = json.loads((folder / "report.json").read_text())
    assert saved["aborted"] == "LLMError: the cluster went away"
    assert [json.loads(line)["task_id"] for line in (folder / "traces.jsonl").read_text().splitlines()] == ["t0"]
