"""What every experience store shares: filters, grouping, merging near-duplicates, the lesson cap,
ranking, JSONL, and the batch-add plan. A store supplies a few primitives (``StoreBase``'s abstract
methods); the semantics live here once, so the in-memory reference and the Chroma store cannot drift.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from agentforge.errors import InputError
from agentforge.memory.base import Experience, Hit, Where
from agentforge.memory.embeddings import Embedder

# Filterable fields: the record's own, and its provenance's scalar ones.
RECORD_FIELDS = ("kind", "env", "family", "task_id", "spec_hash", "strategy", "failure")
PROVENANCE_FIELDS = ("run", "generation", "optimizer")
WHERE_FIELDS = RECORD_FIELDS + PROVENANCE_FIELDS
IMPORT_BATCH = 512
_COLLECTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$")


def valid_collection_name(name: str) -> bool:
    """Chroma's rule for collection names, checked before chromadb is imported."""
    return bool(_COLLECTION.match(name))


class MemoryStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    backend: str
    path: str | None
    collection: str | None
    embedder: str
    dim: int
    records: int
    merged: int  # near-duplicates folded into stored records (sum of counts minus records)
    by_kind: dict[str, int]
    by_env: dict[str, int]


def field_of(record: Experience, key: str) -> Any:
    return getattr(record.provenance, key) if key in PROVENANCE_FIELDS else getattr(record, key)


def check_where(where: Where | None) -> dict[str, Any]:
    """Equality filters on known fields; an unknown field is bad input, with a suggestion."""
    out: dict[str, Any] = {}
    for key, value in (where or {}).items():
        if key not in WHERE_FIELDS:
            close = get_close_matches(key, WHERE_FIELDS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(WHERE_FIELDS)}"
            raise InputError(f"cannot filter memory on '{key}': {hint}", field=key)
        if value is not None and not isinstance(value, str | int | float):
            raise InputError(f"filter '{key}' must be a string, a number or None, not {type(value).__name__}",
                             field=key)
        out[key] = value
    return out


def matches(record: Experience, where: dict[str, Any]) -> bool:
    return all(field_of(record, key) == value for key, value in where.items())


def group_of(record: Experience) -> str:
    """Near-duplicates are looked for within a group: attempts of one env and task, lessons of one family."""
    if record.kind == "lesson":
        return json.dumps(["lesson", record.env, record.family or record.env])
    return json.dumps(["attempt", record.env, record.task_id])


def merge(stored: Experience, new: Experience) -> Experience:
    """``new`` folded into ``stored``: counts add up; an attempt keeps its best outcome (highest score,
    then lowest cost); a lesson keeps its text and gathers the source tasks of both."""
    count = stored.count + new.count
    if stored.kind == "lesson":
        sources = tuple(sorted({*stored.provenance.source_task_ids, *new.provenance.source_task_ids}))
        provenance = stored.provenance.model_copy(update={"source_task_ids": sources})
        return stored.model_copy(update={"count": count, "provenance": provenance})
    if _outcome(new) < _outcome(stored):  # the better attempt's outcome, under the stored record's identity
        return new.model_copy(update={"count": count, "created_at": stored.created_at, "text": stored.text,
                                      "family": stored.family})
    return stored.model_copy(update={"count": count})


def _outcome(record: Experience) -> tuple[bool, float, float]:
    """Sort key, best first: scored before unscored, higher score, lower cost."""
    return (record.score is None, -(record.score or 0.0), record.cost)


def rank_best(hits: Iterable[Hit]) -> list[Hit]:
    return sorted(hits, key=lambda h: (*_outcome(h.record), h.distance))


def weakest(records: Sequence[tuple[str, Experience]]) -> str:
    """The lesson a new one replaces when its family is full: the least confirmed, then the oldest."""
    return min(records, key=lambda kr: (kr[1].count, kr[1].created_at, kr[0]))[0]


def as_matrix(vectors: Sequence[Sequence[float]] | np.ndarray, dim: int, n: int) -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape != (n, dim):
        raise InputError(f"expected {n} embeddings of {dim} floats, got an array of shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise InputError("embeddings must be finite numbers")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if (norms == 0).any():
        raise InputError("an embedding is all zeros")
    return matrix / norms


# -- JSONL ---------------------------------------------------------------------------------------------
def write_jsonl(path: Path, records: Iterable[Experience]) -> int:
    """Write atomically: a reader never sees half a file, and a failed export leaves the old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for record in records:
                out.write(record.model_dump_json() + "\n")
                n += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def read_jsonl(path: Path) -> list[Experience]:
    """Every record in the file, or ``InputError`` naming the first bad line (nothing half-read)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file to import") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from exc
    out: list[Experience] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(Experience.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            detail = f"{where}: {first['msg']}" if where else first["msg"]
            raise InputError(f"{path}:{number}: not an experience record ({detail}); nothing was imported") from None
    return out


# -- the batch-add plan ------------------------------------------------------------------------------
@dataclass
class Stored:
    key: str
    record: Experience
    vector: np.ndarray


@dataclass
class Plan:
    """What one ``add`` changes: records written (new or merged into) and records replaced."""

    upserts: dict[str, Stored] = field(default_factory=dict)
    deletes: set[str] = field(default_factory=set)
    added: set[str] = field(default_factory=set)  # keys of records new in this batch

    @property
    def new(self) -> int:
        return len(self.added)


def plan_add(records: Sequence[Experience], matrix: np.ndarray, candidates: dict[str, list[Stored]],
             merge_distance: float, max_lessons: int) -> Plan:
    """Decide, record by record, whether each merges into a near-duplicate or is stored, and which lesson
    it replaces when its family is full. ``candidates`` holds, per group, the stored records the new ones
    may merge with (for a lesson group: all of them, so the cap can be kept)."""
    plan = Plan()
    pools = {g: list(c) for g, c in candidates.items()}
    for record, vector in zip(records, matrix, strict=True):
        pool = pools.setdefault(group_of(record), [])
        if pool:
            distances = 1.0 - np.stack([s.vector for s in pool]) @ vector
            best = int(np.argmin(distances))
            if float(distances[best]) < merge_distance:
                nearest = pool[best]
                nearest.record = merge(nearest.record, record)
                plan.upserts[nearest.key] = nearest
                continue
        if record.kind == "lesson" and len(pool) >= max_lessons:
            gone = weakest([(s.key, s.record) for s in pool])
            pool[:] = [s for s in pool if s.key != gone]
            plan.upserts.pop(gone, None)
            if gone in plan.added:
                plan.added.discard(gone)
            else:
                plan.deletes.add(gone)
        key = record.id
        while key in plan.upserts:  # the same record twice yet not near: only with caller-given embeddings
            key += "+"
        fresh = Stored(key, record, vector)
        pool.append(fresh)
        plan.upserts[key] = fresh
        plan.deletes.discard(key)
        plan.added.add(key)
    return plan


# -- the shared store ------------------------------------------------------------------------------------
class StoreBase(ABC):
    """The API every store offers, written once over a store's primitives."""

    backend: str = "?"

    def __init__(self, embedder: Embedder, *, merge_distance: float = 0.05, max_lessons_per_family: int = 20) -> None:
        if not 0.0 <= merge_distance <= 2.0:
            raise InputError(f"merge_distance is a cosine distance in [0, 2], not {merge_distance}")
        if max_lessons_per_family < 1:
            raise InputError("max_lessons_per_family must be at least 1")
        self.embedder = embedder
        self.merge_distance = merge_distance
        self.max_lessons_per_family = max_lessons_per_family

    # primitives ------------------------------------------------------------------------------------
    @abstractmethod
    def _candidates(self, records: Sequence[Experience], matrix: np.ndarray) -> dict[str, list[Stored]]:
        """Per group of ``records``: the stored records they may merge with (all of a lesson group)."""

    @abstractmethod
    def _apply(self, plan: Plan) -> None: ...

    @abstractmethod
    def _search(self, vector: np.ndarray, k: int, where: dict[str, Any]) -> list[Hit]:
        """The ``k`` records nearest ``vector`` among those matching ``where``, nearest first."""

    @abstractmethod
    def _records(self) -> Iterator[Experience]:
        """Every record, oldest first."""

    @abstractmethod
    def forget(self, where: Where) -> int: ...

    @abstractmethod
    def count(self, where: Where | None = None) -> int: ...

    @abstractmethod
    def stats(self) -> MemoryStats: ...

    # the API ---------------------------------------------------------------------------------------
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return as_matrix(self.embedder.embed(list(texts)), self.embedder.dim, len(texts)) if texts else \
            np.zeros((0, self.embedder.dim), dtype=np.float32)

    def add(self, records: Sequence[Experience], *,
            embeddings: Sequence[Sequence[float]] | np.ndarray | None = None) -> int:
        """Store ``records`` in one batch; returns how many were stored as new records. A near-duplicate
        of a stored (or earlier in the batch) record raises that record's count instead, and a lesson
        beyond its family's cap replaces the family's weakest. ``embeddings`` skips the embedder."""
        records = list(records)
        if not records:
            return 0
        for record in records:
            if not isinstance(record, Experience):
                raise InputError(f"memory records are Experience objects, not {type(record).__name__}")
        matrix = (self.embed([r.text for r in records]) if embeddings is None
                  else as_matrix(embeddings, self.embedder.dim, len(records)))
        plan = plan_add(records, matrix, self._candidates(records, matrix), self.merge_distance,
                        self.max_lessons_per_family)
        self._apply(plan)
        return plan.new

    def _vector(self, text: str, embedding: Sequence[float] | np.ndarray | None) -> np.ndarray:
        if embedding is not None:
            return as_matrix([embedding], self.embedder.dim, 1)[0]
        return self.embed([text])[0]

    def similar(self, text: str, k: int = 5, where: Where | None = None, *,
                embedding: Sequence[float] | np.ndarray | None = None) -> list[Hit]:
        """The ``k`` records nearest ``text`` (or ``embedding``), nearest first, among those matching
        ``where`` (equality on record fields, and ``run``, ``generation``, ``optimizer``)."""
        if k < 1:
            return []
        filters = check_where(where)
        return self._search(self._vector(text, embedding), k, filters)

    def best_for(self, text: str, k: int = 3, where: Where | None = None, *, pool: int | None = None,
                 max_distance: float | None = None,
                 embedding: Sequence[float] | np.ndarray | None = None) -> list[Hit]:
        """Attempts on the ``pool`` tasks nearest ``text`` (default ``max(4k, 20)``; only those within
        ``max_distance`` if given), best first: highest score, then lowest cost, then nearest."""
        if k < 1:
            return []
        filters = {**check_where(where), "kind": "attempt"}
        hits = self._search(self._vector(text, embedding), pool or max(4 * k, 20), filters)
        if max_distance is not None:
            hits = [h for h in hits if h.distance <= max_distance]
        return rank_best(hits)[:k]

    def lessons_for(self, text: str, k: int = 3, where: Where | None = None, *,
                    embedding: Sequence[float] | np.ndarray | None = None) -> list[Hit]:
        """The ``k`` lessons nearest ``text``, nearest first."""
        if k < 1:
            return []
        filters = {**check_where(where), "kind": "lesson"}
        return self._search(self._vector(text, embedding), k, filters)

    def export(self, path: Path) -> int:
        """Every record as one JSON line, oldest first (vectors are not exported: they belong to the
        embedder). Returns how many were written."""
        return write_jsonl(Path(path), self._records())

    def import_(self, path: Path) -> int:
        """Add every record of a JSONL export (near-duplicates merge as in ``add``). A malformed line
        imports nothing. Returns how many records the file held."""
        records = read_jsonl(Path(path))
        for start in range(0, len(records), IMPORT_BATCH):
            self.add(records[start:start + IMPORT_BATCH])
        return len(records)

    def close(self) -> None:  # noqa: B027 (a no-op unless the store holds files or connections)
        """Release what the store holds (files, connections); the in-memory store holds nothing."""

    def __enter__(self) -> StoreBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_filter(self, where: Where) -> dict[str, Any]:
        filters = check_where(where)
        if not filters:
            raise InputError("forget needs at least one filter (e.g. {'env': 'arithmetic'}); it never "
                             "empties a store by accident")
        return filters

