"""The run store of an evolve run: one SQLite file in the run folder.

It holds the run's identity and config (``meta``), every candidate with its parent, typed change,
verdict, scores and status (``candidates``), every task result of every evaluation (``results``: the
``TaskResult`` with its traces, compressed, keyed by spec hash, task and repeat), the numbered events
(``events``), what optimizers were shown each generation (``snapshots``), and the wall time of each
session (``sessions``).

Resume replays the loop from its start: evaluations already stored are read back instead of run, and
optimizer calls are answered by the gateway's cache, so no model call is repeated. Writes are
idempotent (keyed rows), so replayed steps leave the store as they found it.
"""

from __future__ import annotations

import json
import sqlite3
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agentforge.errors import RunFolderError
from agentforge.evaluation.report import TaskResult
from agentforge.evolve.events import Event, event_from

FORMAT = "agentforge-evolve"
VERSION = 1
STORE_FILE = "run.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS candidates (
    hash TEXT PRIMARY KEY, parent TEXT, generation INTEGER NOT NULL, optimizer TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '', change TEXT NOT NULL DEFAULT '{}', yaml TEXT NOT NULL,
    status TEXT NOT NULL, stage TEXT, reason TEXT NOT NULL DEFAULT '', verdict TEXT,
    mb_score REAL, parent_mb_score REAL, val_score REAL, test_score REAL, comparison TEXT,
    cost REAL NOT NULL DEFAULT 0, calls INTEGER NOT NULL DEFAULT 0, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    spec_hash TEXT NOT NULL, task_id TEXT NOT NULL, repeat INTEGER NOT NULL, split TEXT NOT NULL,
    score REAL NOT NULL, calls INTEGER NOT NULL, cost REAL NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (spec_hash, task_id, repeat));
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, generation INTEGER NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL,
    at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (key TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (started REAL PRIMARY KEY, seconds REAL NOT NULL);
"""

TABLES = ("meta", "candidates", "results", "events", "snapshots", "sessions")
CANDIDATE_COLUMNS = ("hash", "parent", "generation", "optimizer", "summary", "change", "yaml", "status", "stage",
                     "reason", "verdict", "mb_score", "parent_mb_score", "val_score", "test_score", "comparison",
                     "cost", "calls", "seq")


def _check(path: Path) -> None:
    """Refuse, without writing anything, a file that is not an evolve run store of a version we read."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "meta" not in tables:
                raise RunFolderError(f"{path} is not an agentforge evolve run store (no meta table)", path=str(path))
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise RunFolderError(f"{path} is corrupt or not an SQLite database ({exc}); the run folder was left "
                             "untouched", path=str(path)) from exc
    if meta.get("format") != FORMAT:
        raise RunFolderError(f"{path} belongs to something else (format {meta.get('format')!r}, expected "
                             f"{FORMAT!r}); the run folder was left untouched", path=str(path))
    if int(meta.get("version", 0)) > VERSION:
        raise RunFolderError(f"{path} was written by a newer agentforge (store version {meta['version']}, this one "
                             f"reads {VERSION})", path=str(path))
    missing = [t for t in TABLES if t not in tables]
    if missing:
        raise RunFolderError(f"{path} is incomplete (missing tables {missing}); the run folder was left untouched",
                             path=str(path))


class RunStore:
    def __init__(self, path: Path, con: sqlite3.Connection) -> None:
        self.path = path
        self._con = con

    @classmethod
    def create(cls, folder: Path, meta: dict[str, Any]) -> RunStore:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / STORE_FILE
        if path.exists():
            raise RunFolderError(f"{folder} already holds a run; resume it with --resume {folder}", path=str(folder))
        con = sqlite3.connect(path, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.executescript(_SCHEMA)
        store = cls(path, con)
        with store._tx():
            for key, value in {"format": FORMAT, "version": str(VERSION), **meta}.items():
                con.execute("INSERT INTO meta VALUES (?, ?)", (key, value if isinstance(value, str)
                                                               else json.dumps(value)))
        return store

    @classmethod
    def open(cls, folder: Path) -> RunStore:
        path = folder / STORE_FILE
        if not folder.is_dir():
            raise RunFolderError(f"no run folder at {folder}", path=str(folder))
        if not path.is_file():
            raise RunFolderError(f"{folder} is not an evolve run folder (no {STORE_FILE}); nothing was changed",
                                 path=str(folder))
        _check(path)
        con = sqlite3.connect(path, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        return cls(path, con)

    def close(self) -> None:
        self._con.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._con.execute("BEGIN IMMEDIATE")
        try:
            yield self._con
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._con.execute("COMMIT")

    # -- meta -------------------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return dict(self._con.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, key: str, value: Any) -> None:
        with self._tx() as con:
            con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                        (key, value if isinstance(value, str) else json.dumps(value)))

    # -- results ----------------------------------------------------------------------------------
    def results(self, spec_hash: str, task_ids: Iterable[str], repeat: int) -> dict[str, TaskResult]:
        ids = list(task_ids)
        out: dict[str, TaskResult] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = self._con.execute(
                f"SELECT task_id, data FROM results WHERE spec_hash=? AND repeat=? AND task_id IN "
                f"({','.join('?' * len(chunk))})", (spec_hash, repeat, *chunk)).fetchall()
            for task_id, data in rows:
                out[task_id] = TaskResult.model_validate_json(zlib.decompress(data))
        return out

    def put_result(self, spec_hash: str, repeat: int, result: TaskResult) -> None:
        data = zlib.compress(result.model_dump_json().encode(), 6)
        with self._tx() as con:
            con.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (spec_hash, result.task_id, repeat, result.split, result.score, result.llm_calls,
                         result.cost, data))

    def scores(self) -> list[tuple[str, str, int, str, float, int, float]]:
        """(spec_hash, task_id, repeat, split, score, calls, cost) of every stored result."""
        return self._con.execute(
            "SELECT spec_hash, task_id, repeat, split, score, calls, cost FROM results").fetchall()

    # -- candidates -------------------------------------------------------------------------------
    def put_candidate(self, row: dict[str, Any]) -> None:
        values = {c: row.get(c) for c in CANDIDATE_COLUMNS}
        for key in ("change", "verdict"):
            if values[key] is not None and not isinstance(values[key], str):
                values[key] = json.dumps(values[key])
        with self._tx() as con:
            con.execute(f"INSERT OR REPLACE INTO candidates ({','.join(CANDIDATE_COLUMNS)}) VALUES "
                        f"({','.join('?' * len(CANDIDATE_COLUMNS))})", tuple(values[c] for c in CANDIDATE_COLUMNS))

    def candidates(self) -> list[dict[str, Any]]:
        rows = self._con.execute(f"SELECT {','.join(CANDIDATE_COLUMNS)} FROM candidates ORDER BY seq").fetchall()
        out = []
        for row in rows:
            item = dict(zip(CANDIDATE_COLUMNS, row, strict=True))
            for key in ("change", "verdict"):
                item[key] = json.loads(item[key]) if item[key] else None
            out.append(item)
        return out

    def candidate(self, spec_hash: str) -> dict[str, Any] | None:
        matches = [c for c in self.candidates() if c["hash"].startswith(spec_hash)]
        return matches[0] if len(matches) == 1 else None

    # -- events, snapshots, sessions --------------------------------------------------------------
    def put_event(self, seq: int, event: Event) -> bool:
        """Keep event number ``seq``; False if a replay already has it (the stored one stays)."""
        with self._tx() as con:
            cur = con.execute("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?)",
                              (seq, event.generation, event.type, event.model_dump_json(), time.time()))
        return cur.rowcount > 0

    def events(self) -> list[Event]:
        return [event_from(json.loads(data)) for (data,) in
                self._con.execute("SELECT data FROM events ORDER BY seq").fetchall()]

    def snapshot(self, key: str) -> Any:
        row = self._con.execute("SELECT data FROM snapshots WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_snapshot(self, key: str, data: Any) -> None:
        with self._tx() as con:
            con.execute("INSERT OR IGNORE INTO snapshots VALUES (?, ?)", (key, json.dumps(data)))

    def add_session(self, started: float, seconds: float) -> None:
        with self._tx() as con:
            con.execute("INSERT OR REPLACE INTO sessions VALUES (?, ?)", (started, seconds))

    def seconds_before(self, started: float) -> float:
        row = self._con.execute("SELECT COALESCE(SUM(seconds), 0) FROM sessions WHERE started < ?",
                                (started,)).fetchone()
        return float(row[0])
