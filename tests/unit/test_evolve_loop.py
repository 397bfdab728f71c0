"""The evolve loop end to end with the scripted executor (tests/unit/sample_evolve.py): it finds the
better instruction, rejects what it should at each stage, keeps held-out tasks from optimizers, respects
budgets, emits typed events, records lineage, and replays from its store and cache."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agentforge.errors import BudgetExceeded, InputError, RunFolderError
from agentforge.evolve.config import BudgetConfig, EvolveConfig, Limits, SplitConfig
from agentforge.evolve.events import Event
from agentforge.evolve.loop import aevolve
from agentforge.evolve.store import RunStore
from agentforge.llm.scripted import register_script, unregister_script
from agentforge.memory.embeddings import HashingEmbedder
from agentforge.memory.in_memory import InMemoryStore
from agentforge.workflow.loader import load_spec, spec_from_text
from tests.unit.sample_evolve import SEED_WORKFLOW, AddEnv, MenuOptimizer, executor


@pytest.fixture
def model(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    name = f"evolve-{request.node.name}"[:60]
    register_script(name, executor(tmp_path / "calls.log"))
    yield f"scripted/{name}", tmp_path / "calls.log"
    unregister_script(name)


def _config(model: str, **kw: Any) -> EvolveConfig:
    base: dict[str, Any] = {"optimizers": ("menu-test",), "model": model, "optimizer_model": model, "seed": 3,
                            "minibatch": 6, "budget": BudgetConfig(generations=4), "patience": 3}
    base.update(kw)
    return EvolveConfig(**base)


def _run(config: EvolveConfig, env: Any = None, events: list[Event] | None = None, **kw: Any) -> Any:
    spec = spec_from_text(SEED_WORKFLOW)
    memory = kw.pop("memory", InMemoryStore(HashingEmbedder()))
    return asyncio.run(aevolve(spec, env or AddEnv(), config, on_event=events.append if events is not None else None,
                               memory=memory, **kw))


def _calls(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_evolve_finds_the_better_instruction_and_proves_it_on_held_out_tasks(model: Any) -> None:
    name, _ = model
    result = _run(_config(name))
    assert "CAREFUL" in result.best.node("ask").instruction
    assert result.seed_test < 0.5 and result.best_test == 1.0
    assert result.test_comparison.improved("bootstrap")
    assert result.best.parent is not None  # lineage: the best records its parent
    folder = result.folder
    assert (folder / "run.sqlite").is_file() and (folder / "best.yaml").is_file()
    assert result.best.hash in (folder / "report.html").read_text(encoding="utf-8")
    assert load_spec(folder / "best.yaml").hash == result.best.hash
    assert {p.stem for p in (folder / "pool").glob("*.yaml")} == set(result.pool)


def test_every_stage_rejects_what_it_should_and_says_why(model: Any) -> None:
    name, _ = model
    MenuOptimizer.shown.clear()
    result = _run(_config(name, optimizer_options={"menu-test": {"per_call": 3}}, budget=BudgetConfig(generations=3)))
    store = RunStore.open(result.folder)
    rows = {r["hash"]: r for r in store.candidates()}
    store.close()
    # WORSE and TWEAK lose or tie on the minibatch; once CAREFUL is in, its re-proposals are repeats
    assert result.rejected["minibatch"] >= 2 and result.rejected["novelty"] >= 1
    assert {r["stage"] for r in rows.values() if r["status"] == "rejected"} == {"minibatch"}
    worse = [r for r in rows.values() if "WORSE" in r["summary"]]
    assert worse and all(r["val_score"] is None for r in worse)  # the cascade never spent val on them
    assert all(r["reason"] for r in rows.values() if r["status"] == "rejected")


def test_optimizers_see_train_tasks_only(model: Any) -> None:
    name, _ = model
    MenuOptimizer.shown.clear()
    env = AddEnv()
    _run(_config(name), env=env)
    train = {t.id for t in env.tasks("train")}
    assert MenuOptimizer.shown and set(MenuOptimizer.shown) <= train


def test_a_gain_within_noise_is_not_accepted(model: Any) -> None:
    name, _ = model
    # TWEAK changes nothing real; with the minibatch check passed by construction it would still be noise.
    result = _run(_config(name, optimizer_options={"menu-test": {"menu": ["Answer the question. TWEAK"]}}))
    assert result.best.hash == result.seed.hash and result.accepted == 0
    assert result.stop_reason.startswith(("converged", "finished"))


def test_a_budget_that_cannot_pay_for_one_candidate_is_refused_before_any_generation(model: Any) -> None:
    name, log = model
    with pytest.raises(BudgetExceeded, match="cannot evaluate even one candidate"):
        _run(_config(name, budget=BudgetConfig(total=Limits(calls=20))))
    assert _calls(log) <= 3  # only the timing probe ran


def test_a_run_stops_on_its_budget_and_says_what_was_spent(model: Any) -> None:
    name, _ = model
    result = _run(_config(name, budget=BudgetConfig(generations=50, executor=Limits(calls=90)), patience=50,
                          novelty_distance=0.0, optimizer_options={"menu-test": {"numbered": True,
                                                                                 "menu": ["Answer. TWEAK"]}}))
    assert result.stop_reason.startswith("budget: executor budget spent")
    assert result.spent["executor"]["calls"] >= 90 - 21  # stopped when the next candidate no longer fit
    assert result.spent["total"]["calls"] == result.spent["executor"]["calls"] + result.spent["optimizer"]["calls"]


def test_a_stop_file_ends_the_run_after_the_current_generation(model: Any, tmp_path: Path) -> None:
    name, _ = model
    events: list[Event] = []

    def stop_after_first(event: Event) -> None:
        events.append(event)
        if event.type == "generation_started":
            Path(event_folder[0], "STOP").write_text("")

    event_folder: list[str] = []

    def on_event(event: Event) -> None:
        if event.type == "run_started":
            event_folder.append(event.folder)  # type: ignore[attr-defined]
        stop_after_first(event)

    spec = spec_from_text(SEED_WORKFLOW)
    result = asyncio.run(aevolve(spec, AddEnv(), _config(name, budget=BudgetConfig(generations=10)),
                                 on_event=on_event, memory=InMemoryStore(HashingEmbedder())))
    assert result.generations == 1 and result.stop_reason.startswith("stop file")


def test_events_arrive_typed_in_order_and_the_store_keeps_the_same_history(model: Any) -> None:
    name, _ = model
    events: list[Event] = []
    result = _run(_config(name), events=events)
    kinds = [e.type for e in events]
    assert kinds[:3] == ["run_started", "preflight", "seed_scored"]
    assert kinds[-1] == "run_finished" and "generation_started" in kinds and "candidate_accepted" in kinds
    store = RunStore.open(result.folder)
    assert store.events() == events
    store.close()


def test_same_seed_same_lineage(model: Any) -> None:
    name, _ = model

    def lineage(result: Any) -> list[tuple[Any, ...]]:
        store = RunStore.open(result.folder)
        rows = [(r["hash"], r["parent"], r["generation"], r["status"], r["stage"]) for r in store.candidates()]
        store.close()
        return rows

    a = _run(_config(name, seed=11))
    b = _run(_config(name, seed=11))
    assert lineage(a) == lineage(b) and a.folder != b.folder


def test_rerunning_a_finished_evolve_makes_no_new_model_calls(model: Any) -> None:
    name, log = model
    first = _run(_config(name))
    calls = _calls(log)
    second = _run(_config(name))
    assert _calls(log) == calls
    assert second.spent["total"]["fresh_calls"] == 0 and second.new_calls == 0
    assert second.best.hash == first.best.hash and second.best_test == first.best_test


def test_resuming_a_finished_run_replays_it_from_its_store(model: Any) -> None:
    name, log = model
    first = _run(_config(name))
    calls = _calls(log)
    again = asyncio.run(aevolve(None, AddEnv(), None, resume=first.folder, memory=InMemoryStore(HashingEmbedder())))
    assert _calls(log) == calls and again.best.hash == first.best.hash and again.folder == first.folder
    assert again.new_calls == 0 and first.new_calls > 0


def test_bad_input_fails_before_a_run_folder_is_made(model: Any, tmp_path: Path) -> None:
    name, _ = model
    runs = tmp_path / "runs"
    with pytest.raises(InputError, match="unknown optimizer 'reflekt' \\(did you mean 'reflect'\\?\\)"):
        _run(_config(name, optimizers=("reflekt",), runs_dir=runs))
    with pytest.raises(InputError, match="too few tasks"):
        _run(_config(name, runs_dir=runs, splits=SplitConfig(min_val=20)))
    assert not runs.exists() or not any(runs.iterdir())


def test_resuming_a_folder_that_is_not_a_run_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(RunFolderError):
        asyncio.run(aevolve(None, None, None, resume=tmp_path / "elsewhere"))


def test_no_held_out_task_reaches_a_proposer_prompt_a_memory_record_or_a_lesson(tmp_path: Path) -> None:
    """With the real reflect optimizer asking a scripted optimizer model: every prompt it sent, every
    memory record and every lesson is checked for val and test task ids and question texts."""
    from agentforge.llm.scripted import ScriptedModel

    register_script("leak-exec", executor())
    proposer = register_script("leak-opt", ScriptedModel(default='{"choices": [0, 1, 2], "reason": "try them"}'))
    proposer.on(r'"instruction"', '{"instruction": "Answer the question. CAREFUL"}')
    try:
        env = AddEnv()
        memory = InMemoryStore(HashingEmbedder())
        config = _config("scripted/leak-exec", optimizers=("reflect",), optimizer_model="scripted/leak-opt",
                         budget=BudgetConfig(generations=3))
        result = asyncio.run(aevolve(spec_from_text(SEED_WORKFLOW), env, config, memory=memory))
    finally:
        unregister_script("leak-exec")
        unregister_script("leak-opt")
    held_out = [t for s in ("val", "test") for t in env.tasks(s)]
    prompts = [r.prompt_text() for r in proposer.calls]
    assert prompts, "the optimizer model was never asked"
    for task in held_out:
        assert not any(task.inputs["question"] in p for p in prompts), task.id
    train = {t.id for t in env.tasks("train")}
    records = [h.record for h in memory.similar("what is", k=1000)]
    assert records and result.generations >= 1
    for record in records:
        assert {record.task_id, *record.provenance.source_task_ids} - {None} <= train
        assert not any(t.inputs["question"] in record.text for t in held_out)
