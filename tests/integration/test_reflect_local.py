"""reflect on the real local model: evidence from really evaluating a plain QA workflow on six arithmetic
train tasks, then one proposal with the same 0.5B model as the optimizer."""

from __future__ import annotations

import random
import time

import pytest

from agentforge.envs.registry import load_env
from agentforge.evaluation.evaluator import aevaluate
from agentforge.llm.gateway import Gateway
from agentforge.optimizers.base import Allowance, Evidence
from agentforge.optimizers.reflect import ReflectOptimizer
from agentforge.runtime.workflow import Workflow
from agentforge.workflow.loader import spec_from_text

pytestmark = pytest.mark.local_model

# A deliberately plain seed (a number, no reasoning): the 0.5B model solves some of these and fails others,
# so every kind of option has material: solved runs for demos, failures for the rewrite, votable answers.
PLAIN_QA = """
version: 1
name: plain-qa
inputs: {question: str}
outputs: {answer: float}
defaults: {model: local, temperature: 0, max_tokens: 64}
nodes:
  - {id: ask, kind: agent, instruction: "Answer the question.", prompt: "Question: {question}",
     inputs: [question], outputs: {answer: float}}
"""


async def test_reflect_proposes_valid_candidates_from_real_evidence_with_the_local_model(
        record_property: pytest.RecordProperty) -> None:
    env = load_env("arithmetic")
    train = [t.id for t in env.tasks("train")[:6]]
    workflow = Workflow(spec_from_text(PLAIN_QA))
    report = await aevaluate(workflow, env, task_ids=train, concurrency=2)
    evidence = Evidence(env="arithmetic", results=tuple(report.results), train_ids=tuple(train))
    assert len(evidence.results) == 6

    allowance = Allowance(calls=2)  # one rewrite, one choice
    reflect = ReflectOptimizer(gateway=Gateway(), model="local", rng=random.Random(0))
    started = time.perf_counter()
    candidates = await reflect.apropose(workflow.spec, evidence, allowance)
    seconds = time.perf_counter() - started

    stats = reflect.last_stats
    figures = {"solved": len(evidence.successes()), "calls": allowance.used, "malformed": allowance.malformed,
               "chosen_by": stats.chosen_by, "menu": dict(stats.menu),
               "rewrites_rejected": dict(stats.rewrites_rejected), "candidates": len(candidates),
               "propose_s": round(seconds, 1)}
    record_property("reflect_local", figures)
    print(f"reflect on the local model: {figures}")
    assert candidates, figures
    assert allowance.used <= 2 and allowance.malformed <= allowance.used
    for candidate in candidates:
        assert candidate.parent_hash == workflow.spec.hash and candidate.change.author == "reflect"
        assert candidate.change.nodes() == ("ask",)
        Workflow(candidate.spec)  # compiles
