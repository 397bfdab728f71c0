"""Secrets stay out of evidence: gold answers and gold SQL never reach a TaskResult, its traces or prompts."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from agentforge.envs.base import Environment, LocalSession, Observation, StepResult, Task
from agentforge.envs.datasets.dataset import DatasetEnv
from agentforge.envs.games.sql import SqlEnv
from agentforge.evaluation.evaluator import TraceSink, evaluate
from agentforge.llm.base import LLMRequest
from agentforge.runtime.workflow import Workflow
from agentforge.workflow.loader import spec_from_text
from tests.unit.sample_workflows import POLICY, QA


def workflow(text: str) -> Workflow:
    return Workflow(spec_from_text(textwrap.dedent(text)))


def query_then_answer(request: LLMRequest) -> str:
    """Look at one table, then answer (never the gold query, which only an oracle knows)."""
    return "answer: 3" if "(no actions yet)" not in request.prompt_text() else "query: SELECT COUNT(*) FROM customers"


def test_gold_sql_appears_nowhere_in_the_report_of_a_real_sql_evaluation(scripted: Any, tmp_path: Path) -> None:
    env = SqlEnv(num_tasks=12, seed=0, families=("shop",))
    model, script = scripted
    script.default = query_then_answer
    report = evaluate(workflow(POLICY), env, split=None, model=model, sink=TraceSink(tmp_path / "runs"))
    assert len(report.results) == 12 and all(r.steps == 2 and r.traces for r in report.results)
    assert all(r.feedback and "quer" in r.feedback for r in report.results)  # evidence is there...
    dumped = report.model_dump_json()
    folder = tmp_path / "runs" / report.eval_id
    written = (folder / "traces.jsonl").read_text() + (folder / "report.json").read_text()
    prompts = "\n".join(call.prompt_text() for call in script.calls)
    for task in env.tasks():
        gold_sql = task.meta["gold_sql"]
        assert gold_sql not in dumped and gold_sql not in written and gold_sql not in prompts  # ...the gold is not
    assert '"gold_sql"' not in dumped  # not even as a key (the sink's path names this test, hence the quotes)


def test_sql_marks_its_gold_fields_secret() -> None:
    env = SqlEnv(num_tasks=3, seed=0)
    assert env.public({"correct": True, "answer": 7, "gold_sql": "SELECT 7", "nested": [{"gold_sql": "x"}]}) == {
        "correct": True, "nested": [{}]}


class LeakySession(LocalSession):
    """A careless environment that puts gold data in its step info, at the top and nested."""

    def _reset(self, task: Task) -> Observation:
        return Observation(text=task.inputs["question"], fields=dict(task.inputs))

    def _step(self, action: str) -> StepResult:
        assert self.task is not None
        info = {"answer": self.task.answer, "ok": action == "right",
                "debug": {"expected_sql": "SELECT 'the gold'", "rows": 1}}
        return StepResult(observation=Observation(text="done"), reward=float(action == "right"), done=True, info=info)


class LeakyEnv(Environment):
    name = "leaky"
    secret_fields = frozenset({"answer", "expected_sql"})

    def __init__(self) -> None:
        super().__init__([Task(id="t", split="val", inputs={"question": "q?"}, answer="GOLD-ANSWER-42")])

    def session(self) -> LeakySession:
        return LeakySession(self)


def test_secret_info_fields_are_dropped_at_any_depth(scripted: Any) -> None:
    model, script = scripted
    script.default = "right"
    env = LeakyEnv()
    session = env.session()
    session.reset("t")
    raw = session.step("right").info  # the environment does say it...
    assert raw["answer"] == "GOLD-ANSWER-42" and raw["debug"]["expected_sql"]
    report = evaluate(workflow(QA), env, split="val", model=model)
    (result,) = report.results
    assert result.score == 1.0 and result.info == {"ok": True, "debug": {"rows": 1}}  # ...evidence does not
    dumped = report.model_dump_json()
    assert "GOLD-ANSWER-42" not in dumped and "the gold" not in dumped


def test_a_dataset_answer_in_step_info_stays_out_of_evidence(scripted: Any, tmp_path: Path) -> None:
    data = tmp_path / "capitals.jsonl"
    data.write_text(json.dumps({"id": "fr", "question": "Capital of France?", "answer": "Paris-the-gold"}) + "\n")
    env = DatasetEnv(data, metric="exact_match", splits={"val": 1.0})
    model, script = scripted
    script.default = "Lyon"
    report = evaluate(workflow(QA), env, split="val", model=model)
    (result,) = report.results
    assert result.score == 0.0 and "answer" not in result.info and result.info  # the rest of the info is kept
    assert "Paris-the-gold" not in json.dumps(result.info)  # (a metric's feedback may name it, by design)


def test_a_per_task_policy_sees_no_gold(scripted: Any) -> None:
    env = SqlEnv(num_tasks=4, seed=0, families=("shop",))
    model, script = scripted
    script.default = "answer: 3"
    seen: list[Task] = []

    def policy(task: Task) -> Any:
        seen.append(task)
        return workflow(POLICY).spec

    evaluate(None, env, policy=policy, split=None, model=model)
    assert len(seen) == 4
    for task in seen:
        full = env.task(task.id)
        assert task.answer is None and "gold_sql" not in task.meta
        assert task.inputs == full.inputs and task.meta["family"] == full.meta["family"]  # the rest is there
        assert full.meta["gold_sql"] not in task.model_dump_json()


def test_a_code_tasks_hidden_tests_are_secret(tmp_path: Path) -> None:
    data = tmp_path / "code.jsonl"
    data.write_text(json.dumps({"id": "inc", "prompt": "Write inc(x).", "tests": ["assert inc(1) == 2"]}) + "\n")
    env = DatasetEnv(data, metric="code_tests", splits={"val": 1.0})
    task = env.task("inc")
    assert task.meta["tests"] == ["assert inc(1) == 2"]
    public = env.public_task(task)
    assert public.meta == {k: v for k, v in task.meta.items() if k != "tests"} and public.answer is None
