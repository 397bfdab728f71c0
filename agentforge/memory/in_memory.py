"""The reference store: every record and vector in process memory, exact cosine search with numpy.

It defines what the Chroma store must do (the conformance suite runs both); it is also the right store
for a short-lived run that keeps nothing.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from agentforge.memory._store import MemoryStats, Plan, StoreBase, Stored, check_where, group_of, matches
from agentforge.memory.base import Experience, Hit, Where
from agentforge.memory.embeddings import Embedder

__all__ = ["InMemoryStore"]


class InMemoryStore(StoreBase):
    backend = "in_memory"

    def __init__(self, embedder: Embedder, *, merge_distance: float = 0.05, max_lessons_per_family: int = 20) -> None:
        super().__init__(embedder, merge_distance=merge_distance, max_lessons_per_family=max_lessons_per_family)
        self._rows: dict[str, Stored] = {}
        self._groups: dict[str, set[str]] = {}
        self._matrix: tuple[list[str], np.ndarray] | None = None  # rebuilt after a change, on the next search
        self._lock = threading.RLock()

    def _candidates(self, records: Sequence[Experience], matrix: np.ndarray) -> dict[str, list[Stored]]:
        with self._lock:
            out: dict[str, list[Stored]] = {}
            for group in {group_of(r) for r in records}:
                out[group] = [Stored(k, self._rows[k].record, self._rows[k].vector)
                              for k in sorted(self._groups.get(group, ()))]
            return out

    def _apply(self, plan: Plan) -> None:
        with self._lock:
            for key in plan.deletes:
                self._drop(key)
            for key, row in plan.upserts.items():
                self._drop(key)
                self._rows[key] = Stored(key, row.record, row.vector)
                self._groups.setdefault(group_of(row.record), set()).add(key)
            self._matrix = None

    def _drop(self, key: str) -> None:
        row = self._rows.pop(key, None)
        if row is not None:
            self._groups.get(group_of(row.record), set()).discard(key)

    def _search(self, vector: np.ndarray, k: int, where: dict[str, Any]) -> list[Hit]:
        with self._lock:
            if self._matrix is None:
                keys = list(self._rows)
                stacked = (np.stack([self._rows[key].vector for key in keys]) if keys
                           else np.zeros((0, vector.shape[0]), dtype=np.float32))
                self._matrix = (keys, stacked)
            keys, stacked = self._matrix
            if not keys:
                return []
            distances = 1.0 - stacked @ vector
            hits: list[Hit] = []
            for i in np.argsort(distances, kind="stable"):
                record = self._rows[keys[i]].record
                if matches(record, where):
                    hits.append(Hit(record=record, distance=max(0.0, float(distances[i]))))
                    if len(hits) == k:
                        break
            return hits

    def _records(self) -> Iterator[Experience]:
        with self._lock:
            rows = sorted(self._rows.items(), key=lambda kv: (kv[1].record.created_at, kv[0]))
        return iter([row.record for _, row in rows])

    def forget(self, where: Where) -> int:
        filters = self._require_filter(where)
        with self._lock:
            gone = [key for key, row in self._rows.items() if matches(row.record, filters)]
            for key in gone:
                self._drop(key)
            self._matrix = None
            return len(gone)

    def count(self, where: Where | None = None) -> int:
        filters = check_where(where)
        with self._lock:
            return sum(1 for row in self._rows.values() if matches(row.record, filters))

    def stats(self) -> MemoryStats:
        with self._lock:
            records = [row.record for row in self._rows.values()]
        return MemoryStats(
            backend=self.backend, path=None, collection=None, embedder=self.embedder.name, dim=self.embedder.dim,
            records=len(records), merged=sum(r.count for r in records) - len(records),
            by_kind=dict(Counter(r.kind for r in records)),
            by_env=dict(Counter(r.env or "-" for r in records)))
