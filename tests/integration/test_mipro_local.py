"""mipro on the real local model: DSPy's MIPROv2 end to end through the gateway, tiny (one node, six
arithmetic train tasks, two trials), the same 0.5B model proposing instructions and answering."""

from __future__ import annotations

import random
import time

import pytest

from agentforge.llm.gateway import Gateway
from agentforge.optimizers.base import Allowance
from agentforge.optimizers.mipro import MiproOptimizer
from agentforge.runtime.workflow import Workflow
from tests.unit.sample_evolve import TrainScorer, arithmetic_evidence

pytestmark = pytest.mark.local_model


async def test_mipro_runs_end_to_end_on_the_local_model_through_the_gateway(
        record_property: pytest.RecordProperty) -> None:
    gateway = Gateway()
    workflow, evidence = await arithmetic_evidence(6, gateway, scored=True)
    spec, scorer = workflow.spec, evidence.scorer
    assert isinstance(scorer, TrainScorer)

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
    assert set(scorer.seen) <= set(evidence.train_ids)
    assert allowance.used == stats.lm_calls + stats.run_calls <= allowance.calls
    assert candidates or stats.why_none  # a candidate, or the reason there is none
    for candidate in candidates:
        assert candidate.parent_hash == spec.hash and candidate.change.author == "mipro"
        assert candidate.change.nodes() == ("solve",)
        Workflow(candidate.spec)  # compiles
