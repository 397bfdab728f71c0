"""Many workflows in one evaluation: a policy picks a spec per task; each spec is compiled once."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from agentforge.envs.base import Environment, LocalSession, Observation, StepResult, Task
from agentforge.errors import InputError
from agentforge.evaluation.evaluator import evaluate
from agentforge.runtime import workflow as workflow_module
from agentforge.runtime.compiler import CompiledWorkflow
from agentforge.runtime.workflow import Workflow
from agentforge.workflow.loader import spec_from_text
from agentforge.workflow.spec import WorkflowSpec


def strategy(tag: str) -> WorkflowSpec:
    return spec_from_text(textwrap.dedent(f"""
        version: 1
        name: strategy-{tag}
        inputs: {{question: str}}
        outputs: {{answer: str}}
        nodes:
          - {{id: ask, kind: agent, prompt: "{tag}: {{question}}", inputs: [question], outputs: [answer]}}
        """))


class KindSession(LocalSession):
    def _reset(self, task: Task) -> Observation:
        return Observation(text=task.inputs["question"], fields=dict(task.inputs))

    def _step(self, action: str) -> StepResult:
        assert self.task is not None
        return StepResult(observation=Observation(text="ok"), reward=float(action == self.task.answer), done=True)


class KindEnv(Environment):
    """Counting tasks want code, lookup tasks want a direct answer."""

    name = "kinds"

    def __init__(self) -> None:
        kinds = ["count", "lookup", "count", "lookup", "count"]
        super().__init__([Task(id=f"t{i}", split="val", inputs={"question": f"{kind} {i}"}, answer=kind.upper(),
                               meta={"kind": kind}) for i, kind in enumerate(kinds)])

    def session(self) -> KindSession:
        return KindSession(self)


def answer_by_strategy(request: Any) -> str:
    prompt = request.messages[-1].content
    tag, question = prompt.split(": ", 1)
    return question.split()[0].upper() if tag == question.split()[0] else "wrong"


def test_two_tasks_run_two_specs_each_compiled_once(scripted: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    model, script = scripted
    script.default = answer_by_strategy
    compiled: list[str] = []

    class Counting(CompiledWorkflow):
        def __init__(self, spec: WorkflowSpec) -> None:
            compiled.append(spec.name)
            super().__init__(spec)

    monkeypatch.setattr(workflow_module, "CompiledWorkflow", Counting)
    specs = {"count": strategy("count"), "lookup": strategy("lookup")}
    chosen: list[str] = []

    def policy(task: Task) -> WorkflowSpec:
        chosen.append(task.id)
        return specs[task.meta["kind"]]

    report = evaluate(None, KindEnv(), policy=policy, split="val", model=model)
    assert chosen == ["t0", "t1", "t2", "t3", "t4"]  # called once per task, in the calling process
    assert [r.score for r in report.results] == [1.0] * 5  # every task ran the strategy chosen for it
    assert {r.task_id: r.spec_hash for r in report.results} == {
        f"t{i}": specs[k].hash for i, k in enumerate(["count", "lookup", "count", "lookup", "count"])}
    assert sorted(compiled) == ["strategy-count", "strategy-lookup"]  # once per spec hash, not per task
    assert report.specs == {spec.hash: spec.name for spec in specs.values()}
    assert sorted({c.messages[-1].content.split(":")[0] for c in script.calls}) == ["count", "lookup"]


def test_a_policy_may_return_workflows_and_falls_back_on_the_default(scripted: Any) -> None:
    model, script = scripted
    script.default = answer_by_strategy
    default = Workflow(strategy("count"))
    lookup = Workflow(strategy("lookup"))
    report = evaluate(default, KindEnv(), policy=lambda t: lookup if t.meta["kind"] == "lookup" else default.spec,
                      split="val", model=model)
    assert [r.score for r in report.results] == [1.0] * 5
    assert report.workflow_hash == default.spec.hash


def test_an_evaluation_needs_a_workflow_or_a_policy() -> None:
    with pytest.raises(InputError, match="workflow or a policy"):
        evaluate(None, KindEnv(), split="val")
