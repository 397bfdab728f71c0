"""textgrad on the real local model: evidence from really evaluating a plain QA workflow on four arithmetic
train tasks, then one proposal with the same 0.5B model computing the gradients and the update."""

from __future__ import annotations

import random
import time

import pytest

from agentforge.envs.registry import load_env
from agentforge.evaluation.evaluator import aevaluate
from agentforge.llm.gateway import Gateway
from agentforge.optimizers.base import Allowance, Evidence
from agentforge.optimizers.textgrad import TextGradOptimizer
from agentforge.runtime.workflow import Workflow
from agentforge.workflow.edits import SetComponent
from agentforge.workflow.loader import spec_from_text

pytestmark = pytest.mark.local_model

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


async def test_textgrad_proposes_from_real_arithmetic_evidence_or_says_why_not(
        record_property: pytest.RecordProperty) -> None:
    env = load_env("arithmetic")
    train = [t.id for t in env.tasks("train")[:4]]
    workflow = Workflow(spec_from_text(PLAIN_QA))
    report = await aevaluate(workflow, env, task_ids=train, concurrency=2)
    evidence = Evidence(env="arithmetic", results=tuple(report.results), train_ids=tuple(train))
    assert len(evidence.results) == 4

    # two records, one gradient call each (the instruction), one update: small enough for 2 minutes
    allowance = Allowance(calls=3)
    textgrad = TextGradOptimizer(gateway=Gateway(), model="local", rng=random.Random(0), candidates=1, max_records=2,
                                 clip_chars=300, optimize_prompts=False, gradient_max_tokens=120,
                                 update_max_tokens=160)
    started = time.perf_counter()
    candidates = await textgrad.apropose(workflow.spec, evidence, allowance)
    seconds = time.perf_counter() - started

    run = textgrad.last_run
    figures = {"solved": len(evidence.successes()), "records": run.records, "calls": run.calls,
               "gradients": run.gradients, "malformed": run.malformed, "rejected": dict(run.rejected),
               "reason": run.reason, "largest_prompt": run.largest_prompt, "candidates": len(candidates),
               "propose_s": round(seconds, 1),
               "new_instruction": [str(c.change.edits[0].after)[:200] for c in candidates]}
    record_property("textgrad_local", figures)
    print(f"textgrad on the local model: {figures}")
    assert run.calls == allowance.used <= 3 and run.calls >= 1
    assert candidates or run.reason, figures  # a candidate, or a clean reason why none
    for candidate in candidates:
        assert candidate.parent_hash == workflow.spec.hash and candidate.change.author == "textgrad"
        (edit,) = candidate.change.edits
        assert isinstance(edit, SetComponent) and edit.name == "ask.instruction"
        assert 0 < len(edit.value) <= 2000 and edit.value != "Answer the question."
        Workflow(candidate.spec)  # compiles
