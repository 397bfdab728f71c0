"""The evolve loop's parts on their own: parent selection, splits and the held-out guard, budgets, the
run store's refusals, and the novelty check."""

from __future__ import annotations

import hashlib
import random
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from agentforge.errors import InputError, RunFolderError, SafetyViolation
from agentforge.evaluation.report import TaskResult
from agentforge.evolve.budget import Ledger, Spend
from agentforge.evolve.config import BudgetConfig, Limits, SplitConfig, parse_budget
from agentforge.evolve.novelty import Novelty
from agentforge.evolve.selector import ParetoSelector, SoftmaxSelector, pareto_front
from agentforge.evolve.splits import Splits, TaskGuard
from agentforge.evolve.store import RunStore
from agentforge.workflow.edits import Change, SetComponent
from agentforge.workflow.loader import spec_from_text
from agentforge.workflow.spec import Candidate
from tests.unit.sample_evolve import SEED_WORKFLOW, AddEnv

# -- parent selection -------------------------------------------------------------------------------

POOL = {
    "best": {"a": 1.0, "b": 1.0, "c": 0.0, "d": 0.0},
    "other": {"a": 0.0, "b": 0.0, "c": 1.0, "d": 0.0},   # worse on average, but alone solves c
    "dominated": {"a": 1.0, "b": 0.0, "c": 0.0, "d": 0.0},
}


def test_pareto_front_keeps_members_that_lead_somewhere_and_drops_dominated_ones() -> None:
    front = pareto_front(POOL)
    assert front == {"best": 2, "other": 1}


def test_pareto_selector_tries_every_front_member_not_always_the_best() -> None:
    rng = random.Random(0)
    picks = Counter(ParetoSelector(uniform=0.0).select(POOL, rng) for _ in range(600))
    assert set(picks) == {"best", "other"}
    assert 0.25 < picks["other"] / 600 < 0.42  # weighted by tasks led: 1 of 3


def test_uniform_mix_gives_dominated_members_a_chance() -> None:
    rng = random.Random(1)
    picks = Counter(ParetoSelector(uniform=0.3).select(POOL, rng) for _ in range(600))
    assert picks["dominated"] > 30


def test_softmax_selector_prefers_higher_means_but_not_only() -> None:
    rng = random.Random(2)
    picks = Counter(SoftmaxSelector(uniform=0.0, temperature=0.5).select(POOL, rng) for _ in range(600))
    assert picks["best"] > picks["other"] > 0


def test_selection_is_reproducible_with_the_same_seed() -> None:
    a = [ParetoSelector().select(POOL, r) for r in [random.Random(5)] for _ in range(50)]
    b = [ParetoSelector().select(POOL, r) for r in [random.Random(5)] for _ in range(50)]
    assert a == b


# -- splits and the guard ---------------------------------------------------------------------------

def test_splits_take_the_environments_own_splits_trimmed_to_size() -> None:
    splits = Splits.of(AddEnv(), SplitConfig(train=5, val=4))
    assert [t.split for t in splits.train] == ["train"] * 5
    assert len(splits.val) == 4 and len(splits.test) == 12
    assert not set(splits.ids("train")) & (set(splits.ids("val")) | set(splits.ids("test")))


def test_too_few_tasks_for_the_splits_is_a_clear_input_error() -> None:
    with pytest.raises(InputError, match=r"too few tasks.*val has 2 \(needs 4\)"):
        Splits.of(AddEnv(val=2), SplitConfig())


def test_guard_records_what_optimizers_see_and_refuses_held_out_ids() -> None:
    guard = TaskGuard.of(Splits.of(AddEnv(), SplitConfig()))
    guard.show("reflect", ["train0", "train1"])
    assert guard.seen == {"reflect": {"train0", "train1"}}
    with pytest.raises(SafetyViolation, match="held-out task"):
        guard.show("reflect", ["train2", "test30"])
    with pytest.raises(SafetyViolation, match="unknown task"):
        guard.show("mipro", ["nope"])


# -- budgets ----------------------------------------------------------------------------------------

def test_budget_text_caps_the_total_and_each_role() -> None:
    b = parse_budget("generations=7,calls=500,usd=1.5,minutes=20,optimizer.calls=100,executor.tokens=9000")
    assert b.generations == 7 and b.total == Limits(calls=500, usd=1.5, minutes=20)
    assert b.optimizer.calls == 100 and b.executor.tokens == 9000


@pytest.mark.parametrize("text, message", [("calls", "key=value"), ("calls=many", "not a number"),
                                           ("speed=3", "unknown budget item"), ("judge.calls=3", "unknown")])
def test_bad_budget_text_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_budget(text)


def test_ledger_stops_on_the_first_cap_reached_and_names_it() -> None:
    ledger = Ledger(BudgetConfig(total=Limits(calls=100), optimizer=Limits(calls=10)))
    ledger.charge("executor", Spend(calls=50))
    assert ledger.exhausted() is None
    ledger.charge("optimizer", Spend(calls=10))
    assert ledger.exhausted() == "optimizer budget spent (calls 10/10)"
    assert ledger.calls_left("executor") == 40 and ledger.calls_left("optimizer") == 0
    ledger.charge("executor", Spend(calls=40))
    assert ledger.exhausted().startswith("total budget spent (calls 100/100)")
    assert Ledger(BudgetConfig(total=Limits(minutes=1))).exhausted(seconds=61).startswith("total budget spent (minutes")


def test_spend_counts_cached_calls_as_asked_for_and_fresh_apart() -> None:
    results = [TaskResult(task_id="a", split="train", llm_calls=3, cached_calls=1, prompt_tokens=10,
                          completion_tokens=5, cached_prompt_tokens=7, cost=0.01)]
    spend = Spend.of_results(results)
    assert (spend.calls, spend.fresh_calls, spend.tokens, spend.usd) == (3, 2, 22, 0.01)


# -- the run store's refusals -----------------------------------------------------------------------

def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_corrupt_store_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "run.sqlite").write_bytes(b"this is not sqlite" * 100)
    before = _digest(folder / "run.sqlite")
    with pytest.raises(RunFolderError, match="corrupt"):
        RunStore.open(folder)
    assert _digest(folder / "run.sqlite") == before and sorted(p.name for p in folder.iterdir()) == ["run.sqlite"]


def test_a_foreign_sqlite_file_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    con = sqlite3.connect(folder / "run.sqlite")
    con.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    con.execute("INSERT INTO meta VALUES ('format', 'something-else')")
    con.commit()
    con.close()
    before = _digest(folder / "run.sqlite")
    with pytest.raises(RunFolderError, match="belongs to something else"):
        RunStore.open(folder)
    assert _digest(folder / "run.sqlite") == before


def test_a_folder_without_a_store_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    with pytest.raises(RunFolderError, match="not an evolve run folder"):
        RunStore.open(tmp_path / "notes")
    with pytest.raises(RunFolderError, match="no run folder"):
        RunStore.open(tmp_path / "missing")


def test_results_round_trip_with_their_traces_and_replays_are_idempotent(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "run", {"run_id": "r"})
    result = TaskResult(task_id="t1", split="val", score=1.0, llm_calls=2, inputs={"question": "q"})
    store.put_result("h", 0, result)
    store.put_result("h", 0, result)
    assert store.results("h", ["t1", "t2"], 0) == {"t1": result}
    assert len(store.scores()) == 1


# -- novelty ----------------------------------------------------------------------------------------

def _candidate(text: str) -> Candidate:
    seed = spec_from_text(SEED_WORKFLOW)
    return Candidate.of(seed.apply([SetComponent(name="ask.instruction", value=text)], Change(author="t")))


def _words(texts: list[str]) -> list[list[float]]:
    """A bag-of-words embedding over a small fixed vocabulary: enough to tell near from far."""
    vocab = ["answer", "the", "question", "carefully", "briefly", "show", "work", "numbers", "only"]
    return [[float(t.lower().count(w)) for w in vocab] for t in texts]


def test_novelty_rejects_a_repeat_a_no_op_and_a_near_duplicate_but_not_a_new_change() -> None:
    novelty = Novelty(distance=0.05, embed=_words)
    first = _candidate("Answer the question carefully.")
    assert novelty.check(first.spec.hash, first) is None
    assert "repeat" in (novelty.check(first.spec.hash, first) or "")
    near = _candidate("Answer the question  carefully!")
    assert "near-duplicate" in (novelty.check(near.spec.hash, near) or "")
    far = _candidate("Show the work with numbers only.")
    assert novelty.check(far.spec.hash, far) is None
    same = _candidate("Answer the question.")
    assert novelty.check(same.spec.hash, same) == "no change: the candidate is its parent"
