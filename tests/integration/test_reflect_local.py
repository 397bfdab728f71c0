"""reflect on the real local model: evidence from really evaluating the plain arithmetic seed on six
train tasks, then one proposal with the same 0.5B model as the optimizer."""

from __future__ import annotations

import random
import time

import pytest

from agentforge.llm.gateway import Gateway
from agentforge.optimizers.base import Allowance
from agentforge.optimizers.reflect import ReflectOptimizer
from agentforge.runtime.workflow import Workflow
from tests.unit.sample_evolve import arithmetic_evidence

pytestmark = pytest.mark.local_model


async def test_reflect_proposes_valid_candidates_from_real_evidence_with_the_local_model(
        record_property: pytest.RecordProperty) -> None:
    # The plain seed (a number, no reasoning): the 0.5B model solves some of these and fails others, so
    # every kind of option has material: solved runs for demos, failures for the rewrite, votable answers.
    workflow, evidence = await arithmetic_evidence(6)
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
        assert candidate.change.nodes() == ("solve",)
        Workflow(candidate.spec)  # compiles
