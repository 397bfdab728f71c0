"""The experience memory's contract: typed records, search hits, and the store protocol.

A record is one piece of experience: an ``attempt`` (a workflow version or strategy tried on one task,
with its score, cost and what went wrong) or a ``lesson`` (a consolidated note for a task family, with
the provenance it was drawn from). ``text`` is what is embedded and searched: the task's text for an
attempt, the note itself for a lesson. Records carry no answers of held-out tasks: the evolve loop only
ever writes train-split experience.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

RecordKind = Literal["attempt", "lesson"]
Where = Mapping[str, Any]  # equality filters on record fields: {"kind": "lesson", "env": "arithmetic"}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Provenance(_Frozen):
    """Where a record came from: the run, generation and optimizer, and the (train) task ids it rests on."""

    run: str | None = None
    generation: int | None = None
    optimizer: str | None = None
    source_task_ids: tuple[str, ...] = ()


class Experience(_Frozen):
    kind: RecordKind
    text: str = Field(description="What is embedded and searched: the task text, or the lesson.")
    env: str | None = None
    family: str | None = Field(default=None, description="The task family lessons are capped per (default: env).")
    task_id: str | None = None
    spec_hash: str | None = Field(default=None, description="The workflow version tried.")
    strategy: str | None = Field(default=None, description="A strategy's name or JSON, for EGuR.")
    score: float | None = None
    cost: float = 0.0
    tokens: int = 0
    latency_s: float = 0.0
    trajectory: str = Field(default="", description="A short summary of what the workflow did.")
    failure: str | None = Field(default=None, description="The failure signature (error code, node), if any.")
    feedback: str | None = None
    provenance: Provenance = Field(default_factory=Provenance)
    count: int = Field(default=1, ge=1, description="How many near-duplicates were merged into this record.")
    created_at: float = Field(default_factory=time.time)

    @property
    def id(self) -> str:
        """Content address over what makes the record distinct (not its count or time)."""
        keyed = self.model_dump(mode="json", exclude={"count", "created_at"})
        return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:32]


class Hit(_Frozen):
    record: Experience
    distance: float = Field(description="Cosine distance to the query (0 = same direction).")


@runtime_checkable
class MemoryStore(Protocol):
    """What the evolve loop and optimizers' evidence builders need from an experience store."""

    def add(self, records: Sequence[Experience]) -> int:
        """Add records in one batch; a near-duplicate of a stored record raises its count instead.
        Returns how many new records were stored."""
        ...

    def similar(self, text: str, k: int = 5, where: Where | None = None) -> list[Hit]: ...

    def best_for(self, text: str, k: int = 3, where: Where | None = None) -> list[Hit]:
        """Attempts on tasks like ``text``, the best scoring (then cheapest) first."""
        ...

    def lessons_for(self, text: str, k: int = 3, where: Where | None = None) -> list[Hit]: ...

    def forget(self, where: Where) -> int: ...

    def count(self, where: Where | None = None) -> int: ...

    def export(self, path: Path) -> int: ...

    def import_(self, path: Path) -> int: ...

    def stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...
