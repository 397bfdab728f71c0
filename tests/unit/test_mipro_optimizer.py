"""The ``mipro`` optimizer: DSPy's MIPROv2 on the scripted model, trials run through a real train scorer.

The environment asks additions; the scripted executor (tests/unit/sample_evolve.py) answers right when the
node's instruction says CAREFUL (else only for every third task, never with WORSE), so there is a better
instruction to find.
The scripted proposer answers DSPy's JSON prompts; its instruction proposals come from a fixed menu.
"""

from __future__ import annotations

import gc
import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentforge.errors import InputError
from agentforge.evaluation.evaluator import aevaluate
from agentforge.llm.base import LLMRequest
from agentforge.llm.gateway import Gateway
from agentforge.llm.scripted import ScriptedModel, register_script, unregister_script
from agentforge.optimizers.base import Allowance, Evidence
from agentforge.optimizers.mipro import MiproOptimizer, load_preset
from agentforge.optimizers.registry import optimizer_class
from agentforge.runtime.workflow import Workflow
from agentforge.workflow.edits import SetComponent
from agentforge.workflow.loader import spec_from_text
from agentforge.workflow.spec import WorkflowSpec
from tests.unit.sample_evolve import SEED_WORKFLOW, AddEnv, TrainScorer, executor

TYPED = """
version: 1
name: typed
inputs: {question: str, hints: "list[str]"}
outputs: {total: int, sure: bool}
nodes:
  - {id: solve, kind: agent, inputs: [question, hints], outputs: {total: int, sure: bool}}
  - {id: guard, kind: agent, protected: true, instruction: Check., inputs: [question, total],
     outputs: {ok: bool}}
"""


# MIPRO keeps the parent's instruction as candidate 0 in place of the first proposal, so that one is filler.
MENU = ("Answer the question. TWEAK", "Answer the question. CAREFUL", "Answer. WORSE")


def proposer(instruction: Callable[[int], str] | None = None) -> Callable[[LLMRequest], str]:
    """Answers DSPy's JSON-adapter prompts: the field asked for, from the menu for instructions."""
    count = [0]

    def reply(request: LLMRequest) -> str:
        asked = re.findall(r"order of fields: `(\w+)`", request.prompt_text())
        field = asked[-1] if asked else "?"
        if field == "proposed_instruction":
            count[0] += 1
            text = instruction(count[0]) if instruction else MENU[(count[0] - 1) % len(MENU)]
            return text if instruction else json.dumps({field: text})
        return json.dumps({field: "Questions that add two small numbers."})

    return reply


@pytest.fixture
def models() -> Any:
    executor_model = register_script("mipro_exec", executor())
    proposer_model = register_script("mipro_prop", ScriptedModel(default=proposer()))
    yield executor_model, proposer_model
    unregister_script("mipro_exec")
    unregister_script("mipro_prop")


async def setup(gateway: Gateway) -> tuple[AddEnv, WorkflowSpec, Evidence, TrainScorer]:
    env = AddEnv(train=12, val=4, test=4)
    spec = spec_from_text(SEED_WORKFLOW)
    train = [t.id for t in env.tasks("train")]
    scorer = TrainScorer(env, gateway, train, model="scripted/mipro_exec")
    seen = await aevaluate(Workflow(spec, gateway=gateway), env, task_ids=train[:4], model="scripted/mipro_exec")
    evidence = Evidence(env="add", results=tuple(seen.results), train_ids=tuple(train), scorer=scorer)
    return env, spec, evidence, scorer


def optimizer(gateway: Gateway, seed: int = 0, **config: Any) -> MiproOptimizer:
    settings = {"num_trials": 4, "num_candidates": 3, "minibatch_size": 3, **config}
    return MiproOptimizer(gateway=gateway, model="scripted/mipro_prop", rng=random.Random(seed), **settings)


# -- the program ------------------------------------------------------------------------------------
def test_each_unprotected_agent_becomes_a_signature_with_its_typed_fields_and_instruction() -> None:
    from agentforge.optimizers import _dspy_lm
    from agentforge.optimizers.mipro import _nodes

    spec = spec_from_text(TYPED)
    (node,) = _nodes(spec)  # the protected guard is left alone
    signature = _dspy_lm.make_signature(node.id, node.inputs, node.outputs, "Add up.")
    assert list(signature.input_fields) == ["question", "hints"]
    assert list(signature.output_fields) == ["total", "sure"]
    annotations = {k: v.annotation for k, v in signature.fields.items()}
    assert annotations == {"question": str, "hints": list[str], "total": int, "sure": bool}
    assert signature.instructions == "Add up."


async def test_mipro_writes_the_instruction_and_demos_it_found_back_as_edits_that_apply(models: Any) -> None:
    gateway = Gateway()
    env, parent, evidence, _ = await setup(gateway)
    opt = optimizer(gateway)
    allowance = Allowance(calls=500)
    out = await opt.apropose(parent, evidence, allowance)

    assert out, opt.last_stats
    best = out[0]
    assert best.parent_hash == parent.hash and best.spec.parent == parent.hash and best.change.author == "mipro"
    assert all(isinstance(e, SetComponent) and e.name in ("ask.instruction", "ask.demos") for e in best.change.edits)
    assert best.spec.node("ask").instruction == "Answer the question. CAREFUL"
    # Demos are solved train tasks, typed Demo values holding the node's input and output.
    train = {t.inputs["question"]: str(t.answer) for t in env.tasks("train")}
    for demo in best.spec.node("ask").demos:
        assert train[demo.inputs["question"]] == demo.outputs["answer"]
    # The edits are the whole story: applied to the parent again they give the same spec.
    assert parent.apply(best.change.edits).hash == best.spec.hash
    assert len({c.spec.hash for c in out}) == len(out) and parent.hash not in {c.spec.hash for c in out}
    assert opt.last_stats.stopped == "finished" and "MIPRO's pick" in best.change.rationale
    assert allowance.used == opt.last_stats.lm_calls + opt.last_stats.run_calls


async def test_proposer_calls_go_through_the_gateway_seeded_cached_and_schema_constrained(models: Any) -> None:
    _, proposer_model = models
    gateway = Gateway()
    _, parent, evidence, _ = await setup(gateway)
    opt = optimizer(gateway)
    await opt.apropose(parent, evidence, Allowance(calls=500))

    requests = proposer_model.calls
    assert len(requests) == opt.last_stats.lm_calls > 0
    for request in requests:
        assert request.model == "scripted/mipro_prop" and request.seed is not None and request.cache is True
        schema = request.response_schema or {}
        asked = re.findall(r"order of fields: `(\w+)`", request.prompt_text())[-1]
        assert list(schema.get("properties", {})) == [asked]  # the reply's shape reaches the model
    assert len({r.seed for r in requests}) == len(requests)


async def test_demos_are_bootstrapped_from_the_real_runs_traces(models: Any) -> None:
    executor_model, proposer_model = models

    def few_shot_helps(request: LLMRequest) -> str:  # right with any demo in the prompt, else every third task
        a, b = (int(x) for x in re.findall(r"what is (\d+) \+ (\d+)\?", request.prompt_text())[-1])
        shown = any(m.role == "assistant" for m in request.messages)
        return str(a + b if shown or a % 3 == 0 else a + b + 1)

    executor_model.default = few_shot_helps
    proposer_model.default = proposer(lambda k: json.dumps({"proposed_instruction": f"Answer question {k}."}))
    gateway = Gateway()
    env, parent, evidence, _ = await setup(gateway)
    bare = evidence.model_copy(update={"results": ()})  # no evidence records: no labeled demos to draw on
    opt = optimizer(gateway, max_labeled_demos=0)
    out = await opt.apropose(parent, bare, Allowance(calls=500))

    assert out and out[0].spec.node("ask").demos, opt.last_stats
    answers = {t.inputs["question"]: (t.id, str(t.answer)) for t in env.tasks()}
    for demo in out[0].spec.node("ask").demos:
        task_id, answer = answers[demo.inputs["question"]]
        # What the node really said on a MIPRO-train task that its run solved.
        assert task_id in opt.last_stats.train_ids and demo.outputs["answer"] == answer


async def test_only_train_task_ids_reach_the_scorer_and_the_proposer(models: Any) -> None:
    _, proposer_model = models
    gateway = Gateway()
    env, parent, evidence, scorer = await setup(gateway)
    await optimizer(gateway).apropose(parent, evidence, Allowance(calls=500))

    train = set(evidence.train_ids)
    assert scorer.seen and set(scorer.seen) <= train
    held_out = [t.inputs["question"] for t in env.tasks() if t.split != "train"]
    prompts = [r.prompt_text() for r in proposer_model.calls]
    assert prompts and not [q for q in held_out if any(q in p for p in prompts)]


async def test_a_repeated_run_replays_from_the_gateway_cache_and_dspy_writes_no_cache(
        models: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dspy

    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.delenv("DSPY_CACHEDIR", raising=False)
    executor_model, proposer_model = models
    gateway = Gateway()
    _, parent, evidence, _ = await setup(gateway)
    first = await optimizer(gateway, seed=3).apropose(parent, evidence, Allowance(calls=500))
    calls = (len(executor_model.calls), len(proposer_model.calls))
    again = await optimizer(gateway, seed=3).apropose(parent, evidence, Allowance(calls=500))

    assert [c.spec.hash for c in again] == [c.spec.hash for c in first]
    assert (len(executor_model.calls), len(proposer_model.calls)) == calls  # every call came from the cache
    assert not (tmp_path / "user" / ".dspy_cache").exists() and not Path(".dspy_cache").exists()
    assert not dspy.cache.enable_disk_cache


async def test_a_spent_allowance_stops_the_search_within_one_trial(models: Any,
                                                                  capfd: pytest.CaptureFixture[str]) -> None:
    gateway = Gateway()
    _, parent, evidence, _ = await setup(gateway)
    opt = optimizer(gateway, num_threads=2)
    allowance = Allowance(calls=12)
    capfd.readouterr()
    out = await opt.apropose(parent, evidence, allowance)
    gc.collect()
    assert capfd.readouterr() == ("", "")  # dspy's half-done progress bars stay quiet, even when collected

    stats = opt.last_stats
    assert stats.stopped == "allowance"
    assert allowance.used <= allowance.calls + min(opt.config.num_threads, opt.config.minibatch_size)
    assert out == [] and stats.why_none is not None and "allowance" in stats.why_none


async def test_a_stopped_search_still_returns_the_gaining_programs_it_tried(models: Any) -> None:
    gateway = Gateway()
    _, parent, evidence, _ = await setup(gateway)
    full = optimizer(gateway)
    await full.apropose(parent, evidence, Allowance(calls=500))
    needed = full.last_stats.lm_calls + full.last_stats.run_calls
    # Enough for everything but the last full evaluation: the trials so far must not be lost.
    opt = optimizer(gateway)
    allowance = Allowance(calls=needed - 4)
    out = await opt.apropose(parent, evidence, allowance)
    assert opt.last_stats.stopped == "allowance"
    assert out and out[0].spec.node("ask").instruction == "Answer the question. CAREFUL"
    assert "tried by MIPRO" in out[0].change.rationale


async def test_a_malformed_proposer_reply_is_counted_and_survived(models: Any) -> None:
    _, proposer_model = models
    replies = {1: "", 2: "Be CAREFUL with the sums.", 3: "[[ ## nonsense"}
    proposer_model.default = proposer(lambda k: replies.get(k, "{}"))
    gateway = Gateway()
    _, parent, evidence, _ = await setup(gateway)
    opt = optimizer(gateway)
    allowance = Allowance(calls=500)
    out = await opt.apropose(parent, evidence, allowance)

    assert allowance.malformed >= 2 and opt.last_stats.malformed == allowance.malformed
    assert opt.last_stats.stopped == "finished"
    # A reply that was only missing its JSON wrapping is salvaged as the instruction it plainly is.
    assert "Be CAREFUL with the sums." in {c.spec.node("ask").instruction for c in out}


async def test_a_scorer_failure_is_raised_not_swallowed(models: Any) -> None:
    gateway = Gateway()
    _, parent, evidence, _ = await setup(gateway)
    broken = evidence.model_copy(update={"train_ids": (*evidence.train_ids, "val12")})
    with pytest.raises(InputError, match="not train tasks"):
        # The optimizer only knows the ids it is given; the scorer's refusal reaches the caller.
        await optimizer(gateway, seed=1, max_tasks=13, val_fraction=0.5).apropose(parent, broken,
                                                                                   Allowance(calls=500))


async def test_dspy_progress_output_is_not_printed(models: Any, capfd: pytest.CaptureFixture[str]) -> None:
    gateway = Gateway()
    _, parent, evidence, _ = await setup(gateway)
    capfd.readouterr()
    await optimizer(gateway).apropose(parent, evidence, Allowance(calls=500))
    out, err = capfd.readouterr()
    assert out == "" and err == ""


async def test_nothing_to_optimise_or_no_scorer_is_said_not_raised(models: Any) -> None:
    gateway = Gateway()
    _, parent, evidence, _ = await setup(gateway)
    opt = optimizer(gateway)
    assert await opt.apropose(parent, evidence.model_copy(update={"scorer": None}), Allowance(calls=50)) == []
    assert opt.last_stats.why_none is not None and "scorer" in opt.last_stats.why_none
    locked = spec_from_text(SEED_WORKFLOW.replace("kind: agent", "kind: agent\n    protected: true"))
    assert await opt.apropose(locked, evidence, Allowance(calls=50)) == []
    assert opt.last_stats.why_none is not None and "agent node" in opt.last_stats.why_none


def test_the_preset_loads_through_the_registry_and_unknown_settings_are_refused() -> None:
    cls = optimizer_class("mipro")
    assert cls is MiproOptimizer and cls.name == "mipro"
    config = load_preset()
    assert config.num_candidates >= 2 and config.auto is None
    with pytest.raises(InputError, match="did you mean 'num_trials'"):
        load_preset(num_trial=3)
    with pytest.raises(InputError, match="max_labeled_demos"):
        load_preset(max_bootstrapped_demos=0, max_labeled_demos=2)
