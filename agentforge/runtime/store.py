"""Where single runs live on disk: ``<root>/<run_id>/run.json`` (the spec, inputs and status),
``<root>/<run_id>/trace.json``, ``<root>/<run_id>/workspace/`` and one SQLite checkpoint database for
every run under ``<root>``. The evolve loop can own a store of its own by giving it another root.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from agentforge.errors import RunNotFound
from agentforge.runtime.trace import Trace

RECENT_SHOWN = 5


class RunRecord(BaseModel):
    """What ``run.json`` holds: enough to resume the run without its YAML file."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    workflow: str
    workflow_hash: str
    workflow_file: str | None = None
    spec: dict[str, Any]
    inputs: dict[str, Any] = {}
    model: str | None = None
    status: str = "running"
    error: str | None = None


class RunStore:
    """Run folders under one root (by default the settings' ``runs_dir``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def run_dir(self, run_id: str) -> Path:
        return self.root / run_id

    def workspace(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "workspace"

    @property
    def checkpoints_path(self) -> Path:
        return self.root / "checkpoints.sqlite"

    def checkpointer(self) -> Any:
        """An async context manager giving LangGraph's SQLite saver over ``checkpoints_path``."""
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        self.root.mkdir(parents=True, exist_ok=True)
        return AsyncSqliteSaver.from_conn_string(str(self.checkpoints_path))

    def save_record(self, record: RunRecord) -> Path:
        path = self.run_dir(record.run_id) / "run.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name("run.json.part")  # replaced whole, so a kill mid-write leaves the old record
        part.write_text(json.dumps(record.model_dump(mode="json"), indent=2, default=str), encoding="utf-8")
        os.replace(part, path)
        return path

    def load_record(self, run_id: str) -> RunRecord:
        """The run's record; ``RunNotFound`` (naming a few recent runs) if there is none."""
        path = self.run_dir(run_id) / "run.json"
        if not path.is_file():
            recent = self.recent()
            raise RunNotFound(f"no run '{run_id}' under {self.root}" +
                              (f" (recent: {', '.join(recent)})" if recent else ""), run_id=run_id)
        try:
            return RunRecord.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except ValueError as exc:  # JSON or pydantic: a damaged file, not a bug
            raise RunNotFound(f"run '{run_id}' cannot be resumed: its {path} is unreadable ({exc}); "
                              "run the workflow again", run_id=run_id) from None

    def mark_interrupted(self, run_id: str) -> str | None:
        """Mark a run that was stopped while ``running`` as ``interrupted``; give its status, None if the
        run was never saved (stopped before it started)."""
        if not (self.run_dir(run_id) / "run.json").is_file():
            return None
        record = self.load_record(run_id)
        if record.status != "running":
            return record.status
        self.save_record(record.model_copy(update={"status": "interrupted", "error": "interrupted"}))
        return "interrupted"

    def recent(self, limit: int = RECENT_SHOWN) -> list[str]:
        """The last ``limit`` run ids, by name (ids start with their time)."""
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob("*/run.json"))[-limit:]

    def trace_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "trace.json"

    def save_trace(self, trace: Trace) -> Path:
        path = self.trace_path(trace.run_id)
        part = trace.save(path.with_name("trace.json.part"))
        os.replace(part, path)
        return path

    def load_trace(self, run_id: str) -> Trace | None:
        path = self.trace_path(run_id)
        return Trace.load(path) if path.is_file() else None


# -- listing runs (read-only; for `agentforge runs`) -------------------------------------------

_ID_TIME = re.compile(r"^(\d{8}-\d{6})")


class RunSummary(BaseModel):
    """One line of ``agentforge runs``: read from ``run.json`` and, if present, ``trace.json``."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    workflow: str = ""
    status: str = "unknown"
    started_at: float
    latency_s: float | None = None
    model: str | None = None
    error: str | None = None


def is_run_id(name: str) -> bool:
    """Whether ``name`` can name a run folder directly under a store's root (no separators, no ``..``)."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\0" not in name


def run_started_at(store: RunStore, run_id: str) -> float:
    """When a run started: the time its id begins with (``new_run_id``), else when ``run.json`` was written."""
    match = _ID_TIME.match(run_id)
    if match:
        try:
            return time.mktime(time.strptime(match.group(1), "%Y%m%d-%H%M%S"))
        except ValueError:
            pass
    return (store.run_dir(run_id) / "run.json").stat().st_mtime


def summarize_run(store: RunStore, run_id: str) -> RunSummary:
    """A run's summary; a ``run.json`` that cannot be read gives status ``unreadable`` with the reason."""
    started = run_started_at(store, run_id)
    try:
        record = json.loads((store.run_dir(run_id) / "run.json").read_text(encoding="utf-8"))
        if not isinstance(record, dict):
            raise ValueError("run.json does not hold a JSON object")
    except (OSError, ValueError) as exc:  # a run killed while writing its record
        return RunSummary(run_id=run_id, status="unreadable", started_at=started, error=f"run.json: {exc}")
    latency: float | None = None
    try:
        trace = json.loads(store.trace_path(run_id).read_text(encoding="utf-8"))
        if isinstance(trace, dict) and isinstance(trace.get("latency_s"), int | float):
            latency = float(trace["latency_s"])
    except (OSError, ValueError):  # no trace yet (still running, or killed): no latency to show
        latency = None
    return RunSummary(run_id=run_id, workflow=str(record.get("workflow", "")),
                      status=str(record.get("status", "unknown")), started_at=started, latency_s=latency,
                      model=record.get("model"), error=record.get("error"))


def list_runs(store: RunStore, limit: int | None = None) -> list[RunSummary]:
    """The runs under ``store``, newest first; only the first ``limit`` are read beyond a ``stat``."""
    if not store.root.is_dir():
        return []
    keys: dict[str, tuple[float, int]] = {}
    for path in store.root.glob("*/run.json"):
        try:  # ids share a second when runs start together: the record's write time orders those
            keys[path.parent.name] = (run_started_at(store, path.parent.name), path.stat().st_mtime_ns)
        except OSError:  # removed while listing
            continue
    newest = sorted(keys, key=lambda run_id: keys[run_id], reverse=True)
    return [summarize_run(store, run_id) for run_id in newest[:limit]]
