"""mipro on the real local model: DSPy's MIPROv2 end to end through the gateway, tiny (one node, six
arithmetic train tasks, two trials), the same 0.5B model proposing instructions and answering."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

import pytest

from agentforge.envs.base import Environment
from agentforge.envs.registry import load_env
from agentforge.errors import InputError
from agentforge.evaluation.evaluator import aevaluate
from agentforge.evaluation.report import TaskResult
from agentforge.llm.gateway import Gateway
from agentforge.optimizers.base import Allowance, Evidence
from agentforge.optimizers.mipro import MiproOptimizer
from agentforge.runtime.workflow import Workflow
from agentforge.workflow.loader import spec_from_text
from agentforge.workflow.spec import WorkflowSpec

pytestmark = pytest.mark.local_model

PLAIN_QA = """
version: 1
name: plain-qa
inputs: {question: str}
outputs: {answer: float}
defaults: {model: local, temperature: 0, max_tokens: 48}
nodes:
  - {id: ask, kind: agent, instruction: "Answer the question.", prompt: "Question: {question}",
     inputs: [question], outputs: {answer: float}}
"""


class TrainScorer:
    """Scores specs on the given train tasks with the real evaluator; any other id is refused."""

    def __init__(self, env: Environment, gateway: Gateway, train: Sequence[str]) -> None:
        self.env, self.gateway, self.train = env, gateway, set(train)
        self.seen: list[str] = []

    async def ascore(self, spec: WorkflowSpec, task_ids: Sequence[str]) -> list[TaskResult]:
        self.seen.extend(task_ids)
        if not set(task_ids) <= self.train:
            raise InputError(f"not train tasks: {sorted(set(task_ids) - self.train)}")
        report = await aevaluate(Workflow(spec, gateway=self.gateway), self.env, task_ids=list(task_ids),
                                 concurrency=2)
        return report.results


async def test_mipro_runs_end_to_end_on_the_local_model_through_the_gateway(
        record_property: pytest.RecordProperty) -> None:
    env = load_env("arithmetic")
    train = [t.id for t in env.tasks("train")[:6]]
    gateway = Gateway()
    spec = spec_from_text(PLAIN_QA)
    report = await aevaluate(Workflow(spec, gateway=gateway), env, task_ids=train, concurrency=2)
    scorer = TrainScorer(env, gateway, train)
    evidence = Evidence(env="arithmetic", results=tuple(report.results), train_ids=tuple(train), scorer=scorer)

    mipro = MiproOptimizer(gateway=gateway, model="local", rng=random.Random(0), num_trials=2, num_candidates=2,
                           max_tokens=160, num_threads=2)
    allowance = Allowance(calls=80)
    started = time.perf_counter()
    candidates = await mipro.apropose(spec, evidence, allowance)
    seconds = time.perf_counter() - started

    stats = mipro.last_stats
    figures = {"seed_solved": len(evidence.successes()), "allowance_used": allowance.used,
               "proposer_calls": stats.lm_calls, "workflow_runs": stats.runs, "run_calls": stats.run_calls,
               "programs_tried": stats.specs_tried, "malformed": allowance.malformed, "stopped": stats.stopped,
               "candidates": len(candidates), "why_none": stats.why_none, "propose_s": round(seconds, 1)}
    record_property("mipro_local", figures)
    print(f"mipro on the local model: {figures}")
    assert stats.stopped == "finished" and stats.lm_calls > 0 and stats.runs > 0
    assert set(scorer.seen) <= set(train)
    assert allowance.used == stats.lm_calls + stats.run_calls <= allowance.calls
    assert candidates or stats.why_none  # a candidate, or the reason there is none
    for candidate in candidates:
        assert candidate.parent_hash == spec.hash and candidate.change.author == "mipro"
        assert candidate.change.nodes() == ("ask",)
        Workflow(candidate.spec)  # compiles
