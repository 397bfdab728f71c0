"""What only the Chroma store does: records in SQLite as the truth, the Chroma index rebuilt from them,
the search planner agreeing with the exact reference, and clear errors for damaged files and a server
that is down, with nothing recorded lost."""

from __future__ import annotations

import hashlib
import shutil
import socket
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from agentforge.errors import MemoryStoreError
from agentforge.memory import ChromaEmbeddingFunction, ChromaStore, Experience, HashingEmbedder, Hit, InMemoryStore

WORDS = ("apples", "pears", "trains", "hours", "sweets", "friends", "capital", "city", "river", "mountain",
         "price", "dollars", "speed", "distance", "area", "square", "triangle", "percent", "discount", "age",
         "years", "temperature", "degrees", "minutes", "seconds")


def corpus(n: int, seed: int = 0) -> list[Experience]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        words = " ".join(rng.choice(WORDS, size=6))
        out.append(Experience(kind="attempt" if i % 3 else "lesson", text=f"task {i}: {words}",
                              env=("arith", "geo", "time")[i % 3], task_id=f"t{i}" if i % 3 else None,
                              family=f"fam{i % 7}", score=float(rng.random()), created_at=float(i)))
    return out


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def same_hits(got: list[Hit], want: list[Hit]) -> bool:
    """The same distances in the same order, and the same records except where a tie at the cut-off
    lets either of two equally near records in."""
    if [round(h.distance, 5) for h in got] != [round(h.distance, 5) for h in want]:
        return False
    last = round(want[-1].distance, 5) if want else 0.0
    return {h.record.text for h in got if round(h.distance, 5) < last} == \
        {h.record.text for h in want if round(h.distance, 5) < last}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_records_and_search_survive_a_reopen(tmp_path: Path) -> None:
    records = corpus(30)
    with ChromaStore(tmp_path, HashingEmbedder()) as store:
        store.add(records)
        before = [(h.record.text, round(h.distance, 5)) for h in store.similar(records[4].text, k=5)]
    with ChromaStore(tmp_path, HashingEmbedder()) as store:
        assert store.count() == 30 and store.index_count() == 30
        assert [(h.record.text, round(h.distance, 5)) for h in store.similar(records[4].text, k=5)] == before


def test_a_deleted_index_is_rebuilt_from_the_records_on_open(tmp_path: Path) -> None:
    records = corpus(40)
    with ChromaStore(tmp_path, HashingEmbedder()) as store:
        store.add(records)
        expected = [h.record.text for h in store.similar(records[10].text, k=4)]
    shutil.rmtree(tmp_path / "chroma")
    with ChromaStore(tmp_path, HashingEmbedder()) as store:
        assert store.index_count() == 40
        assert [h.record.text for h in store.similar(records[10].text, k=4)] == expected


def test_an_index_out_of_step_with_the_records_is_rebuilt(tmp_path: Path) -> None:
    records = corpus(20)
    with ChromaStore(tmp_path, HashingEmbedder()) as store:
        store.add(records)
        attempts = store._collections["attempt"]
        attempts.delete(ids=attempts.get(limit=7, include=[])["ids"])  # an index gone stale
        assert store.index_count() == 13
    with ChromaStore(tmp_path, HashingEmbedder()) as store:
        assert store.index_count() == 20
        assert store.rebuild_index() == 20
        assert store.similar(records[3].text, k=1)[0].record.text == records[3].text


def test_chroma_is_always_handed_the_agentforge_embedding_function(tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    with ChromaStore(tmp_path, embedder) as store:
        for collection in store._collections.values():
            function = collection._embedding_function
            assert isinstance(function, ChromaEmbeddingFunction) and function.embedder is embedder
        # Chroma embedding a document itself gives exactly our vector (never its downloading default).
        lessons = store._collections["lesson"]
        lessons.add(ids=["probe"], documents=["apples and pears"])
        got = lessons.get(ids=["probe"], include=["embeddings"])["embeddings"][0]
        assert np.allclose(got, embedder.embed(["apples and pears"])[0], atol=1e-6)
    rebuilt = ChromaEmbeddingFunction.build_from_config(function.get_config())
    assert rebuilt.embedder.name == "hashing-384"


@pytest.mark.parametrize("exact_limit", [0, 10, 10_000])
def test_every_search_plan_agrees_with_the_exact_reference(tmp_path: Path, exact_limit: int) -> None:
    """exact_limit 0: never the exact plan (index over-fetch, or Chroma's filter); 10: a mix; 10,000: the cost
    model's choice."""
    records = corpus(120, seed=3)
    reference = InMemoryStore(HashingEmbedder())
    reference.add(records)
    with ChromaStore(tmp_path, HashingEmbedder(), exact_limit=exact_limit) as store:
        store.add(records)
        for query in ("apples pears price", "river mountain capital", "task 17: speed"):
            for where in (None, {"env": "geo"}, {"kind": "lesson"}, {"family": "fam3", "kind": "attempt"},
                          {"task_id": None}):
                assert same_hits(store.similar(query, k=5, where=where),
                                 reference.similar(query, k=5, where=where)), (query, where)
            assert same_hits(store.best_for(query, k=3), reference.best_for(query, k=3))


def test_a_large_attempt_group_still_merges_through_the_index(tmp_path: Path) -> None:
    with ChromaStore(tmp_path, HashingEmbedder(), exact_limit=5) as store:
        store.add([Experience(kind="attempt", text=f"untitled task {w} {v}", env="arith", score=0.1)
                   for w in WORDS[:4] for v in WORDS[4:8]])  # 16 attempts without a task id: one group
        assert store.add([Experience(kind="attempt", text="Untitled task pears friends", env="arith", score=0.9)]) == 0
        [hit] = store.similar("untitled task pears friends", k=1)
        assert (hit.record.count, hit.record.score) == (2, 0.9)


def test_a_corrupt_records_file_is_a_clear_error_and_is_left_untouched(tmp_path: Path) -> None:
    file = tmp_path / "records.sqlite3"
    file.write_bytes(b"this is not a database, just some bytes " * 200)
    before = digest(file)
    with pytest.raises(MemoryStoreError, match=r"records\.sqlite3 is not a readable memory store.*left untouched"):
        ChromaStore(tmp_path, HashingEmbedder())
    assert digest(file) == before
    assert not (tmp_path / "chroma").exists()


def test_a_foreign_sqlite_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    file = tmp_path / "records.sqlite3"
    with sqlite3.connect(file) as db:
        db.execute("CREATE TABLE invoices (id INTEGER, total REAL)")
    db.close()
    before = digest(file)
    with pytest.raises(MemoryStoreError, match=r"not an agentforge memory store.*invoices"):
        ChromaStore(tmp_path, HashingEmbedder())
    assert digest(file) == before


def test_a_damaged_record_body_is_reported_not_skipped(tmp_path: Path) -> None:
    with ChromaStore(tmp_path, HashingEmbedder()) as store:
        store.add(corpus(3))
        store._db.execute("UPDATE records SET body = '{\"kind\": 1}' WHERE created_at = 1.0")
        with pytest.raises(MemoryStoreError, match="cannot be read"):
            store.similar("task", k=3)


def test_another_embedder_is_refused_until_the_records_are_re_embedded(tmp_path: Path) -> None:
    records = corpus(12)
    with ChromaStore(tmp_path, HashingEmbedder(384)) as store:
        store.add(records)
    with pytest.raises(MemoryStoreError, match=r"embedded with 'hashing-384', not 'hashing-128'.*--reembed"):
        ChromaStore(tmp_path, HashingEmbedder(128))
    with ChromaStore(tmp_path, HashingEmbedder(128), reembed=True) as store:
        assert store.stats().dim == 128 and store.index_count() == 12
        assert store.similar(records[5].text, k=1)[0].record.text == records[5].text
    with ChromaStore(tmp_path, HashingEmbedder(128)) as store:
        assert store.count() == 12


def test_a_chroma_server_that_is_down_is_a_clear_error_and_loses_nothing(tmp_path: Path) -> None:
    with ChromaStore(tmp_path, HashingEmbedder()) as store:
        store.add(corpus(5))
    before = digest(tmp_path / "records.sqlite3")
    port = free_port()
    with pytest.raises(MemoryStoreError, match=rf"no Chroma server answers at 127\.0\.0\.1:{port}.*chroma run.*"
                                               r"records in .* are untouched") as caught:
        ChromaStore(tmp_path, HashingEmbedder(), host="127.0.0.1", port=port)
    assert caught.value.fields["port"] == port
    assert digest(tmp_path / "records.sqlite3") == before
    with ChromaStore(tmp_path, HashingEmbedder()) as store:
        assert store.count() == 5
