"""textgrad on the real local model: evidence from really evaluating the plain arithmetic seed on four
train tasks, then one proposal with the same 0.5B model computing the gradients and the update."""

from __future__ import annotations

import random
import time

import pytest

from agentforge.llm.gateway import Gateway
from agentforge.optimizers.base import Allowance
from agentforge.optimizers.textgrad import TextGradOptimizer
from agentforge.runtime.workflow import Workflow
from agentforge.workflow.edits import SetComponent
from tests.unit.sample_evolve import arithmetic_evidence

pytestmark = pytest.mark.local_model


async def test_textgrad_proposes_from_real_arithmetic_evidence_or_says_why_not(
        record_property: pytest.RecordProperty) -> None:
    workflow, evidence = await arithmetic_evidence(4)
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
        assert isinstance(edit, SetComponent) and edit.name == "solve.instruction"
        assert 0 < len(edit.value) <= 2000 and edit.value != workflow.spec.node("solve").instruction
        Workflow(candidate.spec)  # compiles
