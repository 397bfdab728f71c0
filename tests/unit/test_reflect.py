"""The reflect optimizer: a menu of typed edits built from train evidence, chosen by the model (or the RNG
when it cannot), with its one free-text proposal checked. Evidence comes from really evaluating small
workflows with the scripted model; the optimizer model is a second scripted model."""

from __future__ import annotations

import json
import random
import re
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from agentforge.errors import InputError
from agentforge.evaluation.evaluator import aevaluate
from agentforge.llm.base import LLMRequest
from agentforge.llm.gateway import Gateway
from agentforge.llm.scripted import ScriptedModel
from agentforge.memory.base import Experience, Hit
from agentforge.optimizers._menu import HINT_PREFIX
from agentforge.optimizers.base import Allowance, Evidence
from agentforge.optimizers.reflect import ReflectOptimizer, load_preset
from agentforge.runtime.workflow import Workflow
from agentforge.workflow.edits import SetComponent, SetSampling
from agentforge.workflow.loader import spec_from_text
from agentforge.workflow.spec import Candidate, WorkflowSpec
from tests.conftest import fresh_script
from tests.unit import sample_workflows
from tests.unit.sample_evolve import AddEnv, add_task
from tests.unit.sample_workflows import GUARDED, instructed

QA = instructed(sample_workflows.QA, "Answer the question.")
ESSAY = sample_workflows.QA  # the essay solver makes its first output long prose: n samples could not vote on it

PAIRS = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12)]


def sum_env() -> AddEnv:
    """Six train tasks (add two numbers) and two test tasks the optimizer must never see."""
    asked = "What is {a} plus {b}?"
    train = [add_task(f"tr{i}", "train", a, b, asked) for i, (a, b) in enumerate(PAIRS)]
    test = [add_task(f"te{i}", "test", a, a, asked) for i, a in enumerate((40, 50))]
    return AddEnv(tasks=train + test, name="sums")


def solver(request: LLMRequest) -> str:
    """Right on tasks whose first number is 1, 5 or 9 (tr0, tr2, tr4), off by one elsewhere."""
    text = request.prompt_text()
    if "Draft: " in text.rsplit("Q: ", 1)[-1]:
        return text.rsplit("Draft: ", 1)[1].strip()
    a, b = map(int, re.findall(r"What is (\d+) plus (\d+)", text)[-1])
    return str(a + b) if a in (1, 5, 9) else str(a + b + 1)


def essay_solver(request: LLMRequest) -> str:
    a, b = map(int, re.findall(r"What is (\d+) plus (\d+)", request.prompt_text())[-1])
    return f"Adding {a} and {b} takes a little care, and after some thought the total comes to {a + b}"


@pytest.fixture
def models() -> Iterator[tuple[str, ScriptedModel, str, ScriptedModel]]:
    """(executor model name, executor, optimizer model name, optimizer), each a fresh scripted model."""
    with fresh_script("reflect-exec") as (exec_model, executor), fresh_script("reflect-opt") as (opt_model, opt):
        executor.default = solver
        yield exec_model, executor, opt_model, opt


async def gather(text: str, model: str, lessons: tuple[str, ...] = ()) -> tuple[WorkflowSpec, Evidence]:
    spec = spec_from_text(textwrap.dedent(text))
    report = await aevaluate(Workflow(spec), sum_env(), split="train", model=model, concurrency=1)
    hits = tuple(Hit(record=Experience(kind="lesson", text=t, env="sums"), distance=0.1) for t in lessons)
    return spec, Evidence(env="sums", results=tuple(report.results), lessons=hits, train_ids=tuple(
        r.task_id for r in report.results))


def optimizer(model: str, seed: int = 0, **config: Any) -> ReflectOptimizer:
    return ReflectOptimizer(gateway=Gateway(), model=model, rng=random.Random(seed), **config)


def menu_of(request: LLMRequest) -> dict[int, str]:
    """The numbered menu lines of a choice prompt."""
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^(\d+)\. (.*)$", request.messages[-1].content, re.M)}


def pick(*needles: str, reason: str = "because") -> Any:
    """A choice reply picking the menu entries that contain each needle, in that order."""

    def reply(request: LLMRequest) -> str:
        menu = menu_of(request)
        chosen = [next(i for i, line in menu.items() if needle in line) for needle in needles]
        return json.dumps({"choices": chosen, "reason": reason})

    return reply


def instruction(candidate: Candidate, node: str = "ask") -> str:
    return str(candidate.spec.node(node).instruction)


async def test_demos_come_only_from_solved_train_records(models: Any) -> None:
    exec_model, _, opt_model, opt = models
    parent, evidence = await gather(QA, exec_model)
    solved = {r.inputs["question"]: r.traces[0].nodes[0].outputs["answer"] for r in evidence.results if r.score == 1}
    assert len(solved) == 3  # tr0, tr2, tr4
    reflect = optimizer(opt_model, candidates=32, demo_options=6, max_demos=2)
    candidates = await reflect.apropose(parent, evidence, Allowance(calls=0))
    demo_sets = [c.spec.node("ask").demos for c in candidates if "worked example" in c.change.summary]
    assert len(demo_sets) >= 3
    for demos in demo_sets:
        assert 1 <= len(demos) <= 2 and demos != parent.node("ask").demos
        for demo in demos:
            assert set(demo.inputs) == {"question"} and set(demo.outputs) == {"answer"}
            assert solved[demo.inputs["question"]] == demo.outputs["answer"]  # a solved train run, as it ran
    assert opt.calls == []


async def test_a_demo_option_replaces_the_demos_and_never_repeats_them(models: Any) -> None:
    exec_model, _, opt_model, _ = models
    parent, evidence = await gather(QA, exec_model)
    reflect = optimizer(opt_model, candidates=32, demo_options=20, max_demos=3)
    first = await reflect.apropose(parent, evidence, Allowance(calls=0))
    with_demos = next(c.spec for c in first if "worked example" in c.change.summary)
    again = await reflect.apropose(with_demos, evidence, Allowance(calls=0))
    demo_sets = [c.spec.node("ask").demos for c in again if "worked example" in c.change.summary]
    assert demo_sets and all(d != with_demos.node("ask").demos and len(d) <= 3 for d in demo_sets)


async def test_ten_successive_hints_keep_the_instruction_bounded(models: Any) -> None:
    exec_model, _, opt_model, _ = models
    lessons = ("Add the numbers digit by digit and carry when a column passes nine.",)
    parent, evidence = await gather(QA, exec_model, lessons)
    hints = load_preset().hints
    longest = max(len(h) for h in (*hints, *lessons))
    reflect = optimizer(opt_model, seed=3, candidates=32)
    spec = parent
    applied: list[str] = []
    for _ in range(10):
        candidates = await reflect.apropose(spec, evidence, Allowance(calls=0))
        hinted = [c for c in candidates if "hint" in c.change.summary or "lesson" in c.change.summary]
        assert hinted
        spec = hinted[0].spec
        text = instruction(hinted[0])
        applied.append(text.rsplit(HINT_PREFIX, 1)[1])
        assert text.startswith("Answer the question.\n\n" + HINT_PREFIX)
        assert text.count(HINT_PREFIX) == 1
        assert len(text) <= len("Answer the question.\n\n" + HINT_PREFIX) + longest
    assert len(set(applied)) > 1  # it really replaced one hint with another


async def test_the_models_choice_is_honoured(models: Any) -> None:
    exec_model, _, opt_model, opt = models
    parent, evidence = await gather(QA, exec_model)
    opt.on("Possible changes", pick("sample 5 answers", "worked example", reason="voting fixes slips"))
    allowance = Allowance(calls=1)
    reflect = optimizer(opt_model)
    candidates = await reflect.apropose(parent, evidence, allowance)
    assert allowance.used == 1 and allowance.malformed == 0 and reflect.last_stats.chosen_by == "model"
    first, second = candidates[0], candidates[1]
    assert {(e.param, e.value) for e in first.change.edits if isinstance(e, SetSampling)} == {
        ("n", 5), ("temperature", 0.7)}
    assert first.spec.node("ask").n == 5 and "voting fixes slips" in first.change.rationale
    assert first.change.author == "reflect" and first.parent_hash == parent.hash
    assert second.spec.node("ask").demos and "worked example" in second.change.summary
    assert len(candidates) == 3 and "RNG" in candidates[2].change.rationale  # the rest filled from the menu
    assert "voting fixes slips" in second.change.rationale and reflect.last_stats.model_choices == 2


@pytest.mark.parametrize("reply", ["no json at all", '{"choices": [99], "reason": "x"}',
                                   '{"choices": [], "reason": "x"}', '{"picks": [1]}'])
async def test_a_malformed_choice_falls_back_to_the_rng_and_is_counted(models: Any, reply: str) -> None:
    exec_model, _, opt_model, opt = models
    parent, evidence = await gather(QA, exec_model)
    opt.on("Possible changes", reply)
    allowance = Allowance(calls=1)
    reflect = optimizer(opt_model)
    candidates = await reflect.apropose(parent, evidence, allowance)
    assert allowance.used == 1 and allowance.malformed == 1
    assert reflect.last_stats.chosen_by == "rng" and reflect.last_stats.malformed == 1
    assert len(candidates) == 3 and len({c.spec.hash for c in candidates}) == 3


def echo_first_question(request: LLMRequest) -> str:
    question = re.search(r"input question: (.*)", request.messages[-1].content)
    assert question is not None
    return json.dumps({"instruction": f"Answer this: {question.group(1)} Give the number."})


@pytest.mark.parametrize(("reply", "reason"), [
    (echo_first_question, "echo"),
    (json.dumps({"instruction": "   "}), "empty"),
    (json.dumps({"instruction": "Add the numbers. " * 80}), "too_long"),
    (json.dumps({"instruction": "Answer  the question."}), "unchanged"),
])
async def test_a_bad_rewrite_is_rejected_and_never_proposed(models: Any, reply: Any, reason: str) -> None:
    exec_model, _, opt_model, opt = models
    parent, evidence = await gather(QA, exec_model)
    opt.on("Rewrite the instruction", reply)
    opt.on("Possible changes", lambda r: json.dumps({"choices": list(menu_of(r))[:3], "reason": "all"}))
    reflect = optimizer(opt_model, candidates=32)
    candidates = await reflect.apropose(parent, evidence, Allowance(calls=5))
    assert reflect.last_stats.rewrites_rejected == {reason: 1}
    assert not any("rewrite" in c.change.summary for c in candidates)
    choice_prompt = opt.calls[-1].messages[-1].content
    assert "rewrite the instruction" not in choice_prompt


async def test_a_checked_rewrite_is_offered_and_keeps_the_hint_paragraph(models: Any) -> None:
    exec_model, _, opt_model, opt = models
    parent, evidence = await gather(QA, exec_model)
    hinted = parent.apply([SetComponent(name="ask.instruction",
                                        value="Answer the question.\n\nHint: Keep the answer short and precise.")])
    good = "Add the two numbers carefully, then reply with the sum as digits only."
    opt.on("Rewrite the instruction", json.dumps({"instruction": good}))
    opt.on("Possible changes", pick("rewrite the instruction", reason="the sums are off"))
    allowance = Allowance(calls=5)
    reflect = optimizer(opt_model)
    candidates = await reflect.apropose(hinted, evidence, allowance)
    assert allowance.used == 2 and reflect.last_stats.rewrites_rejected == {}
    assert instruction(candidates[0]) == good + "\n\nHint: Keep the answer short and precise."
    # The rewrite prompt showed failing runs only, each with its feedback, and no test task.
    rewrite_prompt = opt.calls[0].messages[-1].content
    assert "What is 3 plus 4?" in rewrite_prompt and "expected 7, got 8" in rewrite_prompt
    assert "What is 1 plus 2?" not in rewrite_prompt and "40 plus 40" not in rewrite_prompt


async def test_no_allowance_still_yields_menu_candidates_without_a_call(models: Any) -> None:
    exec_model, _, opt_model, opt = models
    parent, evidence = await gather(QA, exec_model)
    opt.default = "should never be asked"
    allowance = Allowance(calls=0)
    reflect = optimizer(opt_model)
    candidates = await reflect.apropose(parent, evidence, allowance)
    assert len(candidates) == 3 and opt.calls == [] and allowance.used == 0
    assert reflect.last_stats.chosen_by == "rng"
    # The RNG's picks span kinds of option rather than three of one kind.
    kinds = {c.change.edits[0].op + ("" if not isinstance(c.change.edits[0], SetComponent)
                                     else c.change.edits[0].name) for c in candidates}
    assert len(kinds) >= 2


async def test_protected_nodes_are_never_touched(models: Any) -> None:
    exec_model, _, opt_model, opt = models
    parent, evidence = await gather(GUARDED, exec_model)
    assert evidence.records("guard")  # the protected node ran and has evidence
    opt.on("Rewrite the instruction", json.dumps({"instruction": "Check the sum twice before you answer it."}))
    opt.on("Possible changes", lambda r: json.dumps({"choices": list(menu_of(r)), "reason": "all"}))
    reflect = optimizer(opt_model, candidates=32, rewrites=2)
    candidates = await reflect.apropose(parent, evidence, Allowance(calls=5))
    assert len(candidates) > 5
    for candidate in candidates:
        assert candidate.change.nodes() == ("draft",)
        assert candidate.spec.node("guard") == parent.node("guard")
    assert all("[guard]" not in line for line in menu_of(opt.calls[-1]).values())


async def test_sampling_is_offered_only_where_answers_can_vote(models: Any) -> None:
    exec_model, executor, opt_model, _ = models
    parent, evidence = await gather(QA, exec_model)
    short = await optimizer(opt_model, candidates=32).apropose(parent, evidence, Allowance(calls=0))
    assert any(c.spec.node("ask").n == 5 for c in short)
    executor.default = essay_solver
    parent, evidence = await gather(ESSAY, exec_model)
    long = await optimizer(opt_model, candidates=32).apropose(parent, evidence, Allowance(calls=0))
    assert long and not any(isinstance(e, SetSampling) for c in long for e in c.change.edits)


async def test_the_same_seed_gives_the_same_candidates_in_the_same_order(models: Any) -> None:
    exec_model, _, opt_model, opt = models
    parent, evidence = await gather(QA, exec_model, ("Write each sum out in full.",))
    opt.on("Rewrite the instruction", json.dumps({"instruction": "Add both numbers, then answer with digits."}))
    opt.on("Possible changes", lambda r: json.dumps({"choices": [len(menu_of(r)), 1], "reason": "x"}))

    async def run(seed: int, calls: int) -> list[tuple[str, str]]:
        candidates = await optimizer(opt_model, seed=seed).apropose(parent, evidence, Allowance(calls=calls))
        return [(c.spec.hash, c.change.summary) for c in candidates]

    assert await run(7, 5) == await run(7, 5)
    assert await run(7, 0) == await run(7, 0)
    assert await run(7, 0) != await run(8, 0)


async def test_an_option_the_spec_rejects_is_dropped_and_counted_never_raised(models: Any) -> None:
    exec_model, _, opt_model, _ = models
    valid, evidence = await gather(QA, exec_model)
    # A parent that was never validated (a hand-built spec with a dangling node): every edit to it fails.
    data = valid.model_dump(mode="json", by_alias=True, exclude={"parent", "change"})
    data["nodes"].append({"id": "orphan", "kind": "agent", "prompt": "{zzz}", "inputs": ["zzz"], "outputs": ["x"]})
    broken = WorkflowSpec.model_validate(data)
    reflect = optimizer(opt_model)
    assert await reflect.apropose(broken, evidence, Allowance(calls=0)) == []
    stats = reflect.last_stats
    assert stats.apply_failed == sum(stats.menu.values()) > 0 and stats.proposed == 0


async def test_no_evidence_for_any_node_proposes_nothing(models: Any) -> None:
    _, _, opt_model, opt = models
    parent = spec_from_text(textwrap.dedent(QA))
    allowance = Allowance(calls=3)
    assert await optimizer(opt_model).apropose(parent, Evidence(env="sums"), allowance) == []
    assert opt.calls == [] and allowance.used == 0


def test_an_unknown_setting_is_an_input_error_with_a_suggestion() -> None:
    with pytest.raises(InputError, match="did you mean 'candidates'"):
        optimizer("scripted/none", candidate=3)
    with pytest.raises(InputError, match="max_demos"):
        optimizer("scripted/none", max_demos=-1)
    assert optimizer("scripted/none", candidates=5).config.candidates == 5


def test_the_preset_menu_is_generic_and_loads_by_name() -> None:
    config = load_preset("reflect")
    assert 8 <= len(config.hints) <= 14
    assert len(set(config.hints)) == len(config.hints)
    # Task-agnostic: no digits, no dataset words.
    assert not any(re.search(r"\d|arithmetic|dollar|wordle|maze|sql", h, re.I) for h in config.hints)
