"""The persistent experience store: canonical records in SQLite, ChromaDB as the vector index over them.

``<path>/records.sqlite3`` holds every record (its JSON, the fields filters use, and its vector): it is
the truth. The Chroma collection holds ids, vectors and filter fields only, and can always be rebuilt
from the records (``rebuild_index``); that happens by itself when the index is missing or out of step.
The index is embedded (``chromadb.PersistentClient`` in ``<path>/chroma``) or a Chroma server
(``chromadb.HttpClient``); with a server the records still live in ``<path>`` on this machine.

The index is one collection per record kind (``<collection>-attempt``, ``<collection>-lesson``), so
``best_for`` and ``lessons_for`` need no filter. Other filters are planned by cost, because Chroma's own
filtered query costs ~100 ms at 100,000 records whatever it matches: a filter matching few records is
answered exactly from the vectors in SQLite; a broad one over-fetches nearest neighbours from the index
and keeps those that pass (checked in SQLite); Chroma's ``where`` is used only when it is the cheapest.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings

from agentforge.errors import ConfigError, MemoryStoreError
from agentforge.logs import get_logger
from agentforge.memory._store import (
    PROVENANCE_FIELDS,
    RECORD_FIELDS,
    WHERE_FIELDS,
    MemoryStats,
    Plan,
    StoreBase,
    Stored,
    check_where,
    group_of,
    valid_collection_name,
)
from agentforge.memory.base import Experience, Hit, RecordKind, Where
from agentforge.memory.embeddings import Embedder, make_embedder

__all__ = ["ChromaEmbeddingFunction", "ChromaStore"]

log = get_logger(__name__)

SCHEMA_VERSION = "1"
RECORDS_FILE = "records.sqlite3"
INDEX_DIR = "chroma"
_SQL_CHUNK = 500  # ids per IN (...) clause, under SQLite's variable limit
KINDS: tuple[RecordKind, ...] = get_args(RecordKind)
# Costs in microseconds measured on a 2-core machine at 100,000 records, for choosing a search plan.
_EXACT_US_PER_ROW = 10.0      # a vector read from SQLite and scored with numpy
_FETCH_US = (1500.0, 40.0)    # an unfiltered index query: fixed + per neighbour asked for
_WHERE_US = (2000.0, 1.0)     # Chroma's filtered query: fixed + per record in the collection
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY, grp TEXT NOT NULL, kind TEXT NOT NULL, env TEXT, family TEXT, task_id TEXT,
    spec_hash TEXT, strategy TEXT, failure TEXT, run TEXT, generation INTEGER, optimizer TEXT,
    count INTEGER NOT NULL, created_at REAL NOT NULL, body TEXT NOT NULL, embedding BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS records_grp ON records (grp);
CREATE INDEX IF NOT EXISTS records_kind_env ON records (kind, env);
CREATE INDEX IF NOT EXISTS records_env ON records (env);
CREATE INDEX IF NOT EXISTS records_family ON records (family);
CREATE INDEX IF NOT EXISTS records_task ON records (task_id);
CREATE INDEX IF NOT EXISTS records_spec ON records (spec_hash);
CREATE INDEX IF NOT EXISTS records_run ON records (run, generation);
CREATE INDEX IF NOT EXISTS records_created ON records (created_at);
"""
_COLUMNS = ("id", "grp", *WHERE_FIELDS, "count", "created_at", "body", "embedding")


class ChromaEmbeddingFunction(EmbeddingFunction[Documents]):
    """An agentforge ``Embedder`` as Chroma sees it. Every collection is given one, so Chroma never
    falls back to its default function (which downloads a model)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def __call__(self, input: Documents) -> Embeddings:
        return [np.asarray(v, dtype=np.float32) for v in self.embedder.embed(list(input))]

    @staticmethod
    def name() -> str:
        return "agentforge"

    def get_config(self) -> dict[str, Any]:
        return {"embedder": self.embedder.name}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ChromaEmbeddingFunction:
        name = str(config.get("embedder", "minilm"))
        spec = "minilm" if name.startswith("minilm") else name.replace("-", ":", 1)
        return ChromaEmbeddingFunction(make_embedder(spec))

    def default_space(self) -> Any:
        return "cosine"

    def supported_spaces(self) -> Any:
        return ["cosine"]


@dataclass(frozen=True)
class _Filter:
    """A ``where`` as SQL (always) and as a Chroma filter (when it can be: Chroma has no null)."""

    sql: str
    params: tuple[Any, ...]
    chroma: dict[str, Any] | None
    by_id: str  # the same test on rows already picked by id: '+' keeps SQLite from scanning a column's index

    @classmethod
    def of(cls, where: dict[str, Any]) -> _Filter:
        parts = [f"{key} IS NULL" if value is None else f"{key} = ?" for key, value in where.items()]
        params = tuple(value for value in where.values() if value is not None)
        terms = [{key: value} for key, value in where.items()]
        chroma = (None if not terms or None in where.values()
                  else terms[0] if len(terms) == 1 else {"$and": terms})
        return cls(" AND ".join(parts), params, chroma, " AND ".join(f"+{part}" for part in parts))


# What the index keeps beside each vector: the fields a merge never changes, so merging into a stored
# record touches SQLite only (Chroma re-inserts a vector on every upsert, ~7 ms each at 20,000 records).
INDEX_FIELDS = ("env", "family", "task_id")


def _index_metadata(record: Experience) -> dict[str, Any]:
    meta: dict[str, Any] = {"grp": group_of(record)}
    for key in INDEX_FIELDS:
        if getattr(record, key) is not None:
            meta[key] = getattr(record, key)
    return meta


class ChromaStore(StoreBase):
    """Records in SQLite under ``path``; the vector index in Chroma, embedded or on ``host:port``."""

    def __init__(self, path: str | Path, embedder: Embedder, *, host: str | None = None, port: int = 8000,
                 collection: str = "experience", merge_distance: float = 0.05, max_lessons_per_family: int = 20,
                 exact_limit: int = 50_000, reembed: bool = False) -> None:
        super().__init__(embedder, merge_distance=merge_distance, max_lessons_per_family=max_lessons_per_family)
        if not valid_collection_name(collection):
            raise ConfigError(f"collection '{collection}' is not a Chroma collection name: 3-512 characters of "
                              "letters, digits, '.', '_' or '-', starting and ending with a letter or digit")
        self.path = Path(path)
        self.host, self.port = host, port
        self.collection_name = collection
        self.exact_limit = exact_limit
        self.backend = "server" if host else "embedded"
        self.records_file = self.path / RECORDS_FILE
        self._lock = threading.RLock()
        self._client: Any = None
        self._stale = False  # an index write failed: rebuild before the next search
        self._db = self._open_records()
        try:
            self._check_embedder(reembed)
            self._client = self._connect()
            self._collections = {kind: self._open_collection(kind) for kind in KINDS}
            self._count_kinds()
            if reembed or self._index_count() != sum(self._totals.values()):
                self.rebuild_index(reembed=reembed)
        except BaseException:
            self.close()
            raise

    # -- opening ---------------------------------------------------------------------------------------
    def _open_records(self) -> sqlite3.Connection:
        file = self.records_file
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MemoryStoreError(f"cannot create the memory folder {self.path}: {exc}", path=str(self.path)) from exc
        try:
            db = sqlite3.connect(file, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise MemoryStoreError(f"{file}: cannot open the memory records: {exc}", path=str(file)) from exc
        try:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and not {"meta", "records"} <= tables:
                raise MemoryStoreError(
                    f"{file} is an SQLite database but not an agentforge memory store (its tables: "
                    f"{', '.join(sorted(tables))}); it was left untouched: point the memory 'path' elsewhere",
                    path=str(file))
            if tables:
                version = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                if version is None or version[0] != SCHEMA_VERSION:
                    raise MemoryStoreError(
                        f"{file}: memory records of schema {version[0] if version else 'unknown'}, this agentforge "
                        f"reads schema {SCHEMA_VERSION}; it was left untouched", path=str(file))
                columns = {row[1] for row in db.execute("PRAGMA table_info(records)")}
                if not set(_COLUMNS) <= columns:
                    raise MemoryStoreError(f"{file}: the records table lacks columns "
                                           f"{', '.join(sorted(set(_COLUMNS) - columns))}; it was left untouched",
                                           path=str(file))
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            if not tables:
                db.executescript(_SCHEMA)
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        except sqlite3.DatabaseError as exc:
            db.close()
            raise MemoryStoreError(
                f"{file} is not a readable memory store ({exc}); it was left untouched. Move it aside to start "
                "an empty store, or restore it from a JSONL export (agentforge memory import)",
                path=str(file)) from exc
        except BaseException:
            db.close()
            raise
        return db

    def _check_embedder(self, reembed: bool) -> None:
        stored = dict(self._sql("SELECT key, value FROM meta WHERE key IN ('embedder', 'dim')").fetchall())
        name, dim = self.embedder.name, self.embedder.dim
        if stored and stored.get("embedder") != name and not reembed and self._sql_count("", ()) > 0:
            raise MemoryStoreError(
                f"{self.records_file} was embedded with '{stored.get('embedder')}', not '{name}': open it with "
                "that embedder, or re-embed every record (`agentforge memory rebuild --reembed`, or "
                "ChromaStore(..., reembed=True))", path=str(self.records_file))
        if stored.get("embedder") != name and reembed and self._sql_count("", ()) > 0:
            return  # _reembed records the new embedder once every vector is replaced
        if stored.get("embedder") != name or stored.get("dim") != str(dim):
            with self._write():
                self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                     [("embedder", name), ("dim", str(dim))])

    def _connect(self) -> Any:
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        if self.host is None:
            try:
                return chromadb.PersistentClient(path=str(self.path / INDEX_DIR), settings=settings)
            except Exception as exc:  # chromadb's errors (Rust bindings, sqlite) enter our tree here
                raise MemoryStoreError(f"cannot open the Chroma index in {self.path / INDEX_DIR}: {exc}; the records "
                                       f"in {self.records_file} are untouched: delete that folder and it is rebuilt "
                                       "from them", path=str(self.path)) from exc
        try:
            return chromadb.HttpClient(host=self.host, port=self.port, settings=settings)
        except Exception as exc:  # a server down or not Chroma: ValueError, httpx errors
            raise MemoryStoreError(
                f"no Chroma server answers at {self.host}:{self.port} ({exc}). Start one with `chroma run --host "
                f"{self.host} --port {self.port} --path DIR`, or set backend: embedded. The records in "
                f"{self.records_file} are untouched", host=self.host, port=self.port) from exc

    def _where(self) -> str:
        return f"{self.host}:{self.port}" if self.host else str(self.path / INDEX_DIR)

    def index_name(self, kind: str) -> str:
        return f"{self.collection_name}-{kind}"

    def _open_collection(self, kind: str) -> Any:
        name = self.index_name(kind)
        try:
            collection = self._client.get_or_create_collection(
                name, embedding_function=ChromaEmbeddingFunction(self.embedder),
                configuration={"hnsw": {"space": "cosine"}}, metadata={"agentforge": f"{kind} index"})
            space = (collection.configuration_json or {}).get("hnsw", {}) or {}
        except Exception as exc:
            raise self._index_error("cannot open the index collection", exc) from exc
        if space.get("space", "cosine") != "cosine":
            raise MemoryStoreError(f"collection '{name}' at {self._where()} measures '{space.get('space')}' "
                                   "distance, not cosine; it is not an agentforge index: choose another "
                                   "collection name", collection=name)
        return collection

    def _index_error(self, what: str, exc: BaseException) -> MemoryStoreError:
        hint = (f"is the Chroma server at {self.host}:{self.port} still running? " if self.host else "")
        return MemoryStoreError(f"{what} ({self._where()}, collection '{self.collection_name}'): "
                                f"{type(exc).__name__}: {exc}. {hint}The records in {self.records_file} are "
                                "kept; the index is rebuilt from them when the store next opens",
                                collection=self.collection_name)

    # -- SQLite --------------------------------------------------------------------------------------
    def _sql(self, statement: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(statement, tuple(params))
        except sqlite3.DatabaseError as exc:
            raise self._damaged(exc) from exc

    def _damaged(self, exc: BaseException) -> MemoryStoreError:
        return MemoryStoreError(f"{self.records_file}: the memory records cannot be read ({exc}). Restore them from "
                                "a JSONL export (agentforge memory import), or move the file aside",
                                path=str(self.records_file))

    @contextmanager
    def _write(self) -> Iterator[None]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise self._damaged(exc) from exc

    def _sql_count(self, clause: str, params: tuple[Any, ...]) -> int:
        sql = "SELECT count(*) FROM records" + (f" WHERE {clause}" if clause else "")
        return int(self._sql(sql, params).fetchone()[0])

    def _chunks(self, keys: Sequence[str]) -> Iterator[tuple[str, list[str]]]:
        for start in range(0, len(keys), _SQL_CHUNK):
            chunk = list(keys[start:start + _SQL_CHUNK])
            yield ",".join("?" * len(chunk)), chunk

    def _parse(self, body: str) -> Experience:
        try:
            return Experience.model_validate_json(body)
        except ValueError as exc:
            raise self._damaged(exc) from exc

    def _load(self, keys: Sequence[str]) -> dict[str, Experience]:
        out: dict[str, Experience] = {}
        for marks, chunk in self._chunks(keys):
            for key, body in self._sql(f"SELECT id, body FROM records WHERE id IN ({marks})", chunk):
                out[key] = self._parse(body)
        return out

    # -- the index -----------------------------------------------------------------------------------
    def _count_kinds(self) -> None:
        counted = dict(self._sql("SELECT kind, count(*) FROM records GROUP BY kind").fetchall())
        self._totals = {kind: int(counted.get(kind, 0)) for kind in KINDS}

    def _index_count(self) -> int:
        try:
            return sum(int(c.count()) for c in self._collections.values())
        except Exception as exc:
            raise self._index_error("cannot count the index", exc) from exc

    def _index_query(self, kind: str, vector: np.ndarray, n: int,
                     where: dict[str, Any] | None = None) -> list[tuple[str, float]]:
        try:
            found = self._collections[kind].query(query_embeddings=[vector], n_results=n, where=where,
                                                  include=["distances"])
        except Exception as exc:
            raise self._index_error("the index query failed", exc) from exc
        return list(zip(found["ids"][0], (float(d) for d in found["distances"][0]), strict=True))

    def _index_write(self, rows: Sequence[Stored], deletes: dict[str, list[str]]) -> None:
        batch = self._client.get_max_batch_size()
        try:
            for kind, keys in deletes.items():
                for start in range(0, len(keys), batch):
                    self._collections[kind].delete(ids=keys[start:start + batch])
            for kind in KINDS:
                mine = [s for s in rows if s.record.kind == kind]
                for start in range(0, len(mine), batch):
                    part = mine[start:start + batch]
                    self._collections[kind].upsert(
                        ids=[s.key for s in part], embeddings=np.stack([s.vector for s in part]),
                        metadatas=[_index_metadata(s.record) for s in part])
        except Exception as exc:
            self._stale = True
            raise self._index_error("the index update failed", exc) from exc

    def rebuild_index(self, *, reembed: bool = False) -> int:
        """Recreate the Chroma collection from the records (re-embedding their texts first if asked, for
        a changed embedder). Returns how many records were indexed."""
        with self._lock:
            if reembed:
                self._reembed()
            try:
                existing = {c.name for c in self._client.list_collections()}
                for kind in KINDS:
                    if self.index_name(kind) in existing:
                        self._client.delete_collection(self.index_name(kind))
            except Exception as exc:
                raise self._index_error("cannot drop the old index", exc) from exc
            self._collections = {kind: self._open_collection(kind) for kind in KINDS}
            indexed = 0
            cursor = self._sql("SELECT id, body, embedding FROM records ORDER BY created_at, id")
            while chunk := cursor.fetchmany(self._client.get_max_batch_size()):
                rows = [Stored(key, self._parse(body), np.frombuffer(blob, dtype=np.float32))
                        for key, body, blob in chunk]
                self._index_write(rows, {})
                indexed += len(rows)
            self._count_kinds()
            self._stale = False
            log.info("memory_index_rebuilt", records=indexed, collection=self.collection_name)
            return indexed

    def _reembed(self) -> None:
        rows = self._sql("SELECT id, body FROM records").fetchall()
        updates: list[tuple[bytes, str]] = []
        for start in range(0, len(rows), 256):
            part = rows[start:start + 256]
            matrix = self.embed([self._parse(body).text for _, body in part])
            updates += [(vector.tobytes(), key) for (key, _), vector in zip(part, matrix, strict=True)]
        with self._write():
            self._db.executemany("UPDATE records SET embedding = ? WHERE id = ?", updates)
            self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                 [("embedder", self.embedder.name), ("dim", str(self.embedder.dim))])

    # -- the primitives --------------------------------------------------------------------------------
    def _candidates(self, records: Sequence[Experience], matrix: np.ndarray) -> dict[str, list[Stored]]:
        with self._lock:
            groups = sorted({group_of(r) for r in records})
            sizes: dict[str, int] = {}
            for marks, chunk in self._chunks(groups):
                sizes.update(self._sql(f"SELECT grp, count(*) FROM records WHERE grp IN ({marks}) GROUP BY grp",
                                       chunk).fetchall())
            lesson = {g for g in groups if g.startswith('["lesson"')}
            whole = [g for g in groups if sizes.get(g, 0) and (g in lesson or sizes[g] <= self.exact_limit)]
            out: dict[str, list[Stored]] = {g: [] for g in groups}
            for marks, chunk in self._chunks(whole):
                for key, grp, body, blob in self._sql(
                        f"SELECT id, grp, body, embedding FROM records WHERE grp IN ({marks})", chunk):
                    out[grp].append(Stored(key, self._parse(body), np.frombuffer(blob, dtype=np.float32)))
            # A big attempt group (no task id): only the nearest stored record can be merged into.
            for record, vector in zip(records, matrix, strict=True):
                group = group_of(record)
                if sizes.get(group, 0) and group not in whole:
                    nearest = self._nearest_of("attempt", vector, 1, {"grp": group})
                    known = {s.key for s in out[group]}
                    keys = [key for key, _ in nearest if key not in known]
                    for key, grp_body in self._load_with_vectors(keys).items():
                        out[group].append(Stored(key, *grp_body))
            return out

    def _load_with_vectors(self, keys: Sequence[str]) -> dict[str, tuple[Experience, np.ndarray]]:
        out: dict[str, tuple[Experience, np.ndarray]] = {}
        for marks, chunk in self._chunks(keys):
            for key, body, blob in self._sql(f"SELECT id, body, embedding FROM records WHERE id IN ({marks})", chunk):
                out[key] = (self._parse(body), np.frombuffer(blob, dtype=np.float32))
        return out

    def _apply(self, plan: Plan) -> None:
        rows = list(plan.upserts.values())
        with self._lock:
            deletes = self._kinds_of(sorted(plan.deletes))
            with self._write():
                for marks, chunk in self._chunks(sorted(plan.deletes)):
                    self._db.execute(f"DELETE FROM records WHERE id IN ({marks})", chunk)
                self._db.executemany(
                    f"INSERT OR REPLACE INTO records ({', '.join(_COLUMNS)}) VALUES ({','.join('?' * len(_COLUMNS))})",
                    [self._row(s) for s in rows])
            self._count_kinds()
            self._index_write([s for s in rows if s.key in plan.added], deletes)  # merged: same vector and index fields

    def _kinds_of(self, keys: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for marks, chunk in self._chunks(keys):
            for key, kind in self._sql(f"SELECT id, kind FROM records WHERE id IN ({marks})", chunk):
                out.setdefault(kind, []).append(key)
        return out

    @staticmethod
    def _row(stored: Stored) -> tuple[Any, ...]:
        r = stored.record
        fields = [getattr(r, k) for k in RECORD_FIELDS] + [getattr(r.provenance, k) for k in PROVENANCE_FIELDS]
        return (stored.key, group_of(r), *fields, r.count, r.created_at, r.model_dump_json(),
                np.asarray(stored.vector, dtype=np.float32).tobytes())

    def _nearest(self, vector: np.ndarray, k: int, where: dict[str, Any]) -> list[tuple[str, float]]:
        """Keys and distances of the ``k`` records nearest ``vector`` among those matching ``where``."""
        if self._stale:
            self.rebuild_index()
        if "kind" in where and where["kind"] not in KINDS:
            return []
        rest = {key: value for key, value in where.items() if key != "kind"}
        found: list[tuple[str, float]] = []
        for kind in [where["kind"]] if "kind" in where else KINDS:
            found += self._nearest_of(kind, vector, k, rest)
        return sorted(found, key=lambda kd: kd[1])[:k]

    def _nearest_of(self, kind: str, vector: np.ndarray, k: int, where: dict[str, Any]) -> list[tuple[str, float]]:
        total = self._totals[kind]
        if total == 0:
            return []
        if not where:
            return self._index_query(kind, vector, min(k, total))
        sql = _Filter.of({"kind": kind, **where})
        matching = self._sql_count(sql.sql, sql.params)
        if matching == 0:
            return []
        pushed = _Filter.of(where).chroma if set(where) <= {"grp", *INDEX_FIELDS} else None
        n = min(total, max(2 * k, math.ceil(2 * k * total / matching)))
        exact_cost = _EXACT_US_PER_ROW * matching if matching <= self.exact_limit else math.inf
        fetch_cost = _FETCH_US[0] + _FETCH_US[1] * n
        where_cost = _WHERE_US[0] + _WHERE_US[1] * total if pushed is not None else math.inf
        if exact_cost <= min(fetch_cost, where_cost):
            return self._exact(vector, k, sql)
        if where_cost < fetch_cost:
            return self._index_query(kind, vector, min(k, matching), where=pushed)
        while True:
            found = self._index_query(kind, vector, n)
            passing: set[str] = set()
            for marks, chunk in self._chunks([key for key, _ in found]):
                passing.update(row[0] for row in self._sql(
                    f"SELECT id FROM records WHERE id IN ({marks}) AND {sql.by_id}", (*chunk, *sql.params)))
            hits = [(key, d) for key, d in found if key in passing]
            if len(hits) >= k or n >= total:
                return hits[:k]
            n = min(total, n * 4)  # the matches lie further out than their share predicts
            if _FETCH_US[0] + _FETCH_US[1] * n > where_cost:
                return self._index_query(kind, vector, min(k, matching), where=pushed)

    def _exact(self, vector: np.ndarray, k: int, sql: _Filter) -> list[tuple[str, float]]:
        keys, blobs = [], []
        for key, blob in self._sql(f"SELECT id, embedding FROM records WHERE {sql.sql}", sql.params):
            keys.append(key)
            blobs.append(blob)
        distances = 1.0 - np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(keys), -1) @ vector
        order = np.argsort(distances, kind="stable")[:k]
        return [(keys[i], max(0.0, float(distances[i]))) for i in order]

    def _search(self, vector: np.ndarray, k: int, where: dict[str, Any]) -> list[Hit]:
        with self._lock:
            nearest = self._nearest(vector, k, where)
            records = self._load([key for key, _ in nearest])
            return [Hit(record=records[key], distance=max(0.0, distance))
                    for key, distance in nearest if key in records]

    def _records(self) -> Iterator[Experience]:
        with self._lock:
            bodies = self._sql("SELECT body FROM records ORDER BY created_at, id").fetchall()
        return (self._parse(body) for (body,) in bodies)

    # -- the rest of the API -------------------------------------------------------------------------
    def forget(self, where: Where) -> int:
        filt = _Filter.of(self._require_filter(where))
        with self._lock:
            keys = [row[0] for row in self._sql(f"SELECT id FROM records WHERE {filt.sql}", filt.params)]
            deletes = self._kinds_of(keys)
            with self._write():
                for marks, chunk in self._chunks(keys):
                    self._db.execute(f"DELETE FROM records WHERE id IN ({marks})", chunk)
            self._count_kinds()
            self._index_write((), deletes)
            return len(keys)

    def count(self, where: Where | None = None) -> int:
        filt = _Filter.of(check_where(where))
        with self._lock:
            return self._sql_count(filt.sql, filt.params)

    def stats(self) -> MemoryStats:
        with self._lock:
            by_kind = dict(self._sql("SELECT kind, count(*) FROM records GROUP BY kind").fetchall())
            by_env = {env or "-": n for env, n in self._sql("SELECT env, count(*) FROM records GROUP BY env")}
            records, counted = self._sql("SELECT count(*), coalesce(sum(count), 0) FROM records").fetchone()
        return MemoryStats(backend=self.backend, path=str(self.path), collection=self.collection_name,
                           embedder=self.embedder.name, dim=self.embedder.dim, records=records,
                           merged=counted - records, by_kind=by_kind, by_env=by_env)

    def index_count(self) -> int:
        """How many vectors the Chroma collections hold (equal to ``count()`` when in step)."""
        with self._lock:
            return self._index_count()

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                close = getattr(self._client, "close", None)
                if close is not None:
                    try:
                        close()
                    except Exception as exc:  # a server gone away: nothing left to release
                        log.debug("chroma_close_failed", error=str(exc))
                self._client = None
            self._db.close()
