"""The experience-store contract, checked the same way on every store: the in-memory reference and the
Chroma store (embedded here; over a real Chroma server in tests/integration/test_memory_server.py, which
imports these tests and supplies its own ``make_store``). All use the hashing embedder, for speed.

``make_store(**options)`` returns a fresh, empty store; options are ``merge_distance`` and
``max_lessons_per_family``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agentforge.errors import InputError
from agentforge.memory import ChromaStore, Experience, HashingEmbedder, InMemoryStore, MemoryStore, Provenance
from agentforge.memory._store import StoreBase

MakeStore = Callable[..., StoreBase]
_names = itertools.count()


@pytest.fixture(params=["in_memory", "chroma"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeStore]:
    opened: list[StoreBase] = []

    def make(**options: Any) -> StoreBase:
        embedder = HashingEmbedder()
        if request.param == "in_memory":
            store: StoreBase = InMemoryStore(embedder, **options)
        else:  # exact_limit=0: every filtered search goes through the Chroma index, not the exact path
            store = ChromaStore(tmp_path / f"store{next(_names)}", embedder, exact_limit=0, **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def attempt(text: str, task_id: str | None, score: float | None = 1.0, *, env: str = "arith", cost: float = 0.0,
            **fields: Any) -> Experience:
    return Experience(kind="attempt", text=text, env=env, task_id=task_id, score=score, cost=cost, **fields)


def lesson(text: str, *, env: str = "arith", family: str | None = None, created_at: float = 1000.0,
           sources: tuple[str, ...] = ()) -> Experience:
    return Experience(kind="lesson", text=text, env=env, family=family, created_at=created_at,
                      provenance=Provenance(run="r1", generation=1, optimizer="reflect", source_task_ids=sources))


TASKS = {
    "t1": "Tom buys 3 apples at 2 dollars each. How much does he pay?",
    "t2": "A train travels 60 km per hour for 3 hours. How far does it go?",
    "t3": "What is the capital city of France?",
    "t4": "Sara shares 12 sweets equally among 4 friends. How many does each get?",
}


def texts(hits: list[Any]) -> list[str]:
    return [h.record.text for h in hits]


# -- add and merge ----------------------------------------------------------------------------------------
def test_add_stores_a_batch_and_returns_how_many_are_new(make_store: MakeStore) -> None:
    store = make_store()
    assert isinstance(store, MemoryStore)
    assert store.add([attempt(text, tid) for tid, text in TASKS.items()]) == 4
    assert store.count() == 4
    assert store.add([]) == 0


def test_a_repeated_attempt_merges_raising_its_count_and_keeping_the_best_score(make_store: MakeStore) -> None:
    store = make_store()
    store.add([attempt(TASKS["t1"], "t1", 0.2, spec_hash="aaa", failure="wrong_answer")])
    assert store.add([attempt(TASKS["t1"], "t1", 0.9, spec_hash="bbb")]) == 0
    assert store.add([attempt(TASKS["t1"], "t1", 0.5, spec_hash="ccc")]) == 0
    [hit] = store.similar(TASKS["t1"], k=5)
    assert store.count() == 1
    assert hit.record.count == 3
    assert hit.record.score == 0.9 and hit.record.spec_hash == "bbb" and hit.record.failure is None
    assert hit.distance < 1e-4


def test_on_an_equal_score_the_cheaper_attempt_is_kept(make_store: MakeStore) -> None:
    store = make_store()
    store.add([attempt(TASKS["t2"], "t2", 1.0, cost=0.5, spec_hash="dear")])
    store.add([attempt(TASKS["t2"], "t2", 1.0, cost=0.1, spec_hash="cheap")])
    store.add([attempt(TASKS["t2"], "t2", 1.0, cost=0.3, spec_hash="middle")])
    [hit] = store.similar(TASKS["t2"])
    assert (hit.record.spec_hash, hit.record.cost, hit.record.count) == ("cheap", 0.1, 3)


def test_near_duplicates_inside_one_batch_merge_too(make_store: MakeStore) -> None:
    store = make_store()
    batch = [attempt(TASKS["t1"], None, 0.1), attempt(TASKS["t1"].upper(), None, 0.7),
             attempt("  " + TASKS["t1"].lower() + " ", None, 0.4), attempt(TASKS["t3"], None, 1.0)]
    assert store.add(batch) == 2
    counts = {h.record.text: (h.record.count, h.record.score) for h in store.similar("x", k=10)}
    assert counts == {TASKS["t1"]: (3, 0.7), TASKS["t3"]: (1, 1.0)}


def test_the_same_text_on_another_task_or_env_or_kind_is_kept_apart(make_store: MakeStore) -> None:
    store = make_store()
    stored = store.add([attempt(TASKS["t1"], "t1"), attempt(TASKS["t1"], "t1-copy"),
                        attempt(TASKS["t1"], "t1", env="other"), lesson(TASKS["t1"])])
    assert stored == 4 and store.count() == 4


def test_merge_distance_decides_what_counts_as_a_near_duplicate(make_store: MakeStore) -> None:
    close_a, close_b = "sum the prices of all items in the basket", "sum the prices of all the items in the basket"
    strict, loose = make_store(merge_distance=0.0), make_store(merge_distance=0.5)
    for store in (strict, loose):
        store.add([attempt(close_a, None), attempt(close_b, None)])
    assert strict.count() == 2
    assert loose.count() == 1


# -- search --------------------------------------------------------------------------------------------
def test_similar_returns_the_nearest_first_with_distances_and_at_most_k(make_store: MakeStore) -> None:
    store = make_store()
    store.add([attempt(text, tid) for tid, text in TASKS.items()])
    hits = store.similar("How much does Tom pay for 3 apples at 2 dollars each?", k=2)
    assert len(hits) == 2
    assert hits[0].record.task_id == "t1"
    assert 0.0 <= hits[0].distance < hits[1].distance <= 2.0
    assert store.similar("anything", k=0) == []
    assert len(store.similar("anything", k=50)) == 4


def test_similar_filters_with_where_on_record_and_provenance_fields(make_store: MakeStore) -> None:
    store = make_store()
    store.add([attempt(TASKS["t1"], "t1", env="arith"), attempt(TASKS["t3"], "t3", env="capitals"),
               attempt(TASKS["t2"], "t2", env="arith", provenance=Provenance(run="r9", generation=2)),
               lesson("check the units of every quantity")])
    assert {h.record.task_id for h in store.similar(TASKS["t1"], k=10, where={"env": "arith"})} == {"t1", "t2", None}
    assert texts(store.similar(TASKS["t1"], k=10, where={"env": "arith", "kind": "attempt", "run": "r9"})) == \
        [TASKS["t2"]]
    assert texts(store.similar(TASKS["t1"], k=10, where={"generation": 2})) == [TASKS["t2"]]
    assert store.similar(TASKS["t1"], k=10, where={"env": "nowhere"}) == []
    unscoped = store.similar(TASKS["t1"], k=10, where={"task_id": None})
    assert [h.record.kind for h in unscoped] == ["lesson"]


def test_an_unknown_filter_field_is_bad_input_with_a_suggestion(make_store: MakeStore) -> None:
    store = make_store()
    with pytest.raises(InputError, match="did you mean 'env'"):
        store.similar("x", where={"evn": "arith"})
    with pytest.raises(InputError, match="did you mean 'task_id'"):
        store.count({"taskid": "t1"})


def test_best_for_ranks_attempts_on_similar_tasks_by_score_then_cost(make_store: MakeStore) -> None:
    store = make_store()
    store.add([attempt("Tom buys 3 apples at 2 dollars each. How much?", "a", 0.5),
               attempt("Tom buys 4 pears at 3 dollars each. How much?", "b", 1.0, cost=0.2),
               attempt("Tom buys 5 plums at 1 dollar each. How much?", "c", 1.0, cost=0.1),
               attempt("Tom buys 6 figs at 2 dollars each. How much?", "d", None),
               lesson("Tom buys things: multiply the count by the price")])
    best = store.best_for("Tom buys 7 kiwis at 2 dollars each. How much?", k=3)
    assert [h.record.task_id for h in best] == ["c", "b", "a"]
    assert all(h.record.kind == "attempt" for h in best)
    assert [h.record.task_id for h in store.best_for("Tom buys apples", k=1, where={"task_id": "d"})] == ["d"]


def test_lessons_for_returns_only_lessons_nearest_first(make_store: MakeStore) -> None:
    store = make_store()
    store.add([attempt("multiply the count by the price", "t9"),
               lesson("multiply the count by the price of one item"),
               lesson("read the question twice before answering"),
               lesson("answer with the capital city only", env="capitals")])
    hits = store.lessons_for("the count times the price", k=5)
    assert texts(hits)[0] == "multiply the count by the price of one item"
    assert {h.record.kind for h in hits} == {"lesson"} and len(hits) == 3
    assert texts(store.lessons_for("price", k=5, where={"env": "capitals"})) == ["answer with the capital city only"]


# -- the lesson cap -----------------------------------------------------------------------------------
def test_lessons_beyond_the_family_cap_replace_the_weakest(make_store: MakeStore) -> None:
    store = make_store(max_lessons_per_family=3)
    store.add([lesson("alpha lesson about units", created_at=1.0), lesson("beta lesson about rounding", created_at=2.0),
               lesson("gamma lesson about percentages", created_at=3.0)])
    store.add([lesson("alpha lesson about units", created_at=9.0)])  # confirmed again: count 2, now the strongest
    store.add([lesson("delta lesson about fractions", created_at=4.0)])  # the family is full
    kept = {h.record.text: h.record.count for h in store.lessons_for("lesson", k=10)}
    assert kept == {"alpha lesson about units": 2, "gamma lesson about percentages": 1,
                    "delta lesson about fractions": 1}  # beta: count 1 and the oldest of those
    store.add([lesson(f"extra lesson number {i} on topic {i}", created_at=10.0 + i) for i in range(5)])
    assert store.count({"kind": "lesson"}) == 3
    assert "alpha lesson about units" in texts(store.lessons_for("lesson", k=10))


def test_the_cap_is_per_family(make_store: MakeStore) -> None:
    store = make_store(max_lessons_per_family=2)
    store.add([lesson(f"arith lesson {w}", family="money") for w in ("one", "two", "three")])
    store.add([lesson(f"arith lesson {w}", family="speed") for w in ("four", "five")])
    store.add([lesson(f"capital lesson {w}", env="capitals") for w in ("six", "seven", "eight")])
    assert store.count({"kind": "lesson", "family": "money"}) == 2
    assert store.count({"kind": "lesson", "family": "speed"}) == 2
    assert store.count({"kind": "lesson", "env": "capitals"}) == 2


def test_a_merged_lesson_gathers_the_source_tasks_of_both(make_store: MakeStore) -> None:
    store = make_store()
    store.add([lesson("show the working", sources=("t1", "t2"))])
    store.add([lesson("Show the working.", sources=("t2", "t7"))])
    [hit] = store.lessons_for("working")
    assert hit.record.count == 2
    assert hit.record.provenance.source_task_ids == ("t1", "t2", "t7")


# -- forget, count, stats --------------------------------------------------------------------------------
def test_forget_deletes_what_matches_and_nothing_else(make_store: MakeStore) -> None:
    store = make_store()
    store.add([attempt(TASKS["t1"], "t1"), attempt(TASKS["t3"], "t3", env="capitals"),
               lesson("capitals lesson", env="capitals")])
    assert store.forget({"env": "capitals", "kind": "attempt"}) == 1
    assert store.count() == 2
    assert all(h.record.task_id != "t3" for h in store.similar(TASKS["t3"], k=10))
    assert store.forget({"env": "nowhere"}) == 0
    with pytest.raises(InputError, match="at least one filter"):
        store.forget({})
    assert store.count() == 2


def test_count_and_stats_report_records_by_kind_and_env(make_store: MakeStore) -> None:
    store = make_store()
    store.add([attempt(TASKS["t1"], "t1"), attempt(TASKS["t1"], "t1"), attempt(TASKS["t3"], "t3", env="capitals"),
               lesson("a lesson")])
    assert store.count({"kind": "attempt"}) == 2 and store.count({"env": "arith"}) == 2
    stats = store.stats()
    assert stats.records == 3 and stats.merged == 1
    assert stats.by_kind == {"attempt": 2, "lesson": 1}
    assert stats.by_env == {"arith": 2, "capitals": 1}
    assert stats.embedder == "hashing-384" and stats.dim == 384


# -- export / import -----------------------------------------------------------------------------------
def test_export_then_import_round_trips_and_a_second_import_merges(make_store: MakeStore, tmp_path: Path) -> None:
    source, target = make_store(), make_store()
    source.add([attempt(TASKS["t1"], "t1", 0.5, spec_hash="s1"), attempt(TASKS["t1"], "t1", 0.8, spec_hash="s2"),
                attempt(TASKS["t3"], "t3", None, env="capitals", failure="timeout", feedback="too slow"),
                lesson("check the units", sources=("t1",))])
    path = tmp_path / "out" / "memory.jsonl"
    assert source.export(path) == 3
    assert len(path.read_text().splitlines()) == 3
    assert target.import_(path) == 3

    def dump(store: StoreBase) -> list[dict[str, Any]]:
        return sorted((h.record.model_dump() for h in store.similar("x", k=10)), key=lambda d: d["text"])

    assert dump(target) == dump(source)
    target.import_(path)
    assert target.count() == 3
    assert sorted(h.record.count for h in target.similar("x", k=10)) == [2, 2, 4]


def test_a_malformed_import_names_the_line_and_imports_nothing(make_store: MakeStore, tmp_path: Path) -> None:
    store = make_store()
    good = attempt(TASKS["t1"], "t1").model_dump_json()
    path = tmp_path / "bad.jsonl"
    path.write_text(f"{good}\n\n{{\"kind\": \"thought\", \"text\": \"x\"}}\n")
    with pytest.raises(InputError, match=r"bad\.jsonl:3: .*kind"):
        store.import_(path)
    assert store.count() == 0
    with pytest.raises(InputError, match="no such file"):
        store.import_(tmp_path / "missing.jsonl")


# -- precomputed vectors ---------------------------------------------------------------------------------
def test_precomputed_embeddings_skip_the_embedder_and_are_checked(make_store: MakeStore) -> None:
    store = make_store()
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3, 384)).astype(np.float32)
    records = [attempt(f"opaque {i}", f"v{i}") for i in range(3)]
    assert store.add(records, embeddings=vectors) == 3
    [hit] = store.similar("ignored", k=1, embedding=vectors[1] * 7.0)  # normalised on the way in
    assert hit.record.task_id == "v1" and hit.distance < 1e-4
    with pytest.raises(InputError, match="expected 2 embeddings of 384"):
        store.add(records[:2], embeddings=vectors)
    with pytest.raises(InputError, match="384"):
        store.similar("x", embedding=[1.0, 0.0])
