"""``agentforge memory``: look into and manage the experience store.

Exit codes: 0 ok, 1 the store failed (a Chroma server down, damaged records), 2 bad input (an unknown
preset, a bad config or filter, a malformed import file). chromadb and torch load only inside commands.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from agentforge.cli import BAD_INPUT, RUN_FAILED, _fail, out
from agentforge.errors import AgentforgeError, ConfigError, InputError, SpecError

if TYPE_CHECKING:
    from agentforge.memory._store import StoreBase

__all__ = ["memory_app"]

_BAD_INPUT = (SpecError, ConfigError, InputError)

memory_app = typer.Typer(
    help="The experience memory: stats, search, export, import, forget, rebuild. --memory names a preset "
         "in memory/ (default: default) or a memory YAML file.",
    no_args_is_help=True,
)
MemoryRef = Annotated[str, typer.Option("--memory", "-m", help="A preset name in memory/ or a memory YAML file.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@contextmanager
def _store(ref: str, *, reembed: bool = False) -> Iterator[StoreBase]:
    """The store ``ref`` names, closed afterwards; agentforge errors become messages and exit codes."""
    from agentforge.memory.config import open_memory

    try:
        store = open_memory(ref, reembed=reembed)
    except AgentforgeError as exc:
        raise _fail(str(exc), BAD_INPUT if isinstance(exc, _BAD_INPUT) else RUN_FAILED) from None
    try:
        yield store
    except AgentforgeError as exc:
        raise _fail(str(exc), BAD_INPUT if isinstance(exc, _BAD_INPUT) else RUN_FAILED) from None
    finally:
        store.close()


def _parse_where(items: list[str] | None) -> dict[str, Any]:
    from agentforge.memory._store import WHERE_FIELDS, check_where

    where: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise _fail(f"--where '{item}' must look like key=value (keys: {', '.join(WHERE_FIELDS)})", BAD_INPUT)
        if key == "generation":
            try:
                where[key] = int(value)
            except ValueError:
                raise _fail(f"--where generation={value}: a generation is a whole number", BAD_INPUT) from None
        else:
            where[key] = value
    try:
        return check_where(where)
    except InputError as exc:
        raise _fail(str(exc), BAD_INPUT) from None


def _short(text: str, width: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


@memory_app.command("stats")
def stats(memory: MemoryRef = "default", as_json: AsJson = False) -> None:
    """How many records, by kind and by environment; the embedder, the backend and where it lives."""
    with _store(memory) as store:
        info = store.stats()
    if as_json:
        sys.stdout.write(json.dumps(info.model_dump(mode="json"), indent=2) + "\n")
        return
    rows = [("backend", info.backend), ("path", info.path or "-"), ("collection", info.collection or "-"),
            ("embedder", f"{info.embedder} ({info.dim} dims)"), ("records", str(info.records)),
            ("merged", f"{info.merged} near-duplicates folded into them")]
    rows += [(f"kind {kind}", str(n)) for kind, n in sorted(info.by_kind.items())]
    rows += [(f"env {env}", str(n)) for env, n in sorted(info.by_env.items())]
    for name, value in rows:
        out.print(f"[bold]{name:>12}[/]  ", end="", highlight=False)
        out.print(value, markup=False, highlight=False, soft_wrap=True)


@memory_app.command("search")
def search(
    text: Annotated[str, typer.Argument(help="What to look for (a task, a question, a lesson).", show_default=False)],
    k: Annotated[int, typer.Option("-k", min=1, max=1000, help="How many records.")] = 5,
    kind: Annotated[str | None, typer.Option("--kind", help="attempt or lesson.")] = None,
    where: Annotated[list[str] | None, typer.Option("--where", help="key=value filter; repeatable.")] = None,
    memory: MemoryRef = "default",
    as_json: AsJson = False,
) -> None:
    """The records nearest TEXT, nearest first."""
    filters = _parse_where(where)
    if kind is not None:
        if kind not in ("attempt", "lesson"):
            raise _fail(f"--kind '{kind}': use attempt or lesson", BAD_INPUT)
        filters["kind"] = kind
    with _store(memory) as store:
        hits = store.similar(text, k=k, where=filters)
    if as_json:
        payload = [{"distance": round(h.distance, 6), "record": h.record.model_dump(mode="json")} for h in hits]
        sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        return
    if not hits:
        out.print("no records match", highlight=False)
        return
    table = Table(show_edge=False)
    for col in ("distance", "kind", "env", "task", "score", "count", "text"):
        table.add_column(col, justify="right" if col in ("distance", "score", "count") else "left",
                         no_wrap=col != "text")
    for h in hits:
        r = h.record
        table.add_row(f"{h.distance:.3f}", r.kind, r.env or "-", r.task_id or "-",
                      f"{r.score:.3g}" if r.score is not None else "-", str(r.count), _short(r.text))
    out.print(table)


@memory_app.command("export")
def export(
    file: Annotated[Path, typer.Argument(help="The JSONL file to write (replaced if it exists).", show_default=False)],
    memory: MemoryRef = "default",
) -> None:
    """Write every record as one JSON line, oldest first."""
    with _store(memory) as store:
        try:
            n = store.export(file)
        except OSError as exc:
            raise _fail(f"{file}: cannot write: {exc}", BAD_INPUT) from None
    out.print(f"exported {n} records to {file}", markup=False, highlight=False)


@memory_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A JSONL file written by `memory export`.", show_default=False)],
    memory: MemoryRef = "default",
) -> None:
    """Add the records of a JSONL export; near-duplicates merge with the stored ones (counts add up)."""
    with _store(memory) as store:
        before = store.count()
        n = store.import_(file)
        after = store.count()
    out.print(f"imported {n} records from {file}: the store holds {after} (was {before})", markup=False,
              highlight=False)


@memory_app.command("forget")
def forget(
    where: Annotated[list[str], typer.Option("--where", help="key=value filter (at least one); repeatable.",
                                             show_default=False)],
    memory: MemoryRef = "default",
) -> None:
    """Delete the records matching every --where filter (e.g. --where env=arithmetic --where kind=lesson)."""
    filters = _parse_where(where)
    if not filters:
        raise _fail("forget needs at least one --where key=value", BAD_INPUT)
    with _store(memory) as store:
        n = store.forget(filters)
    shown = " ".join(f"{k}={v}" for k, v in filters.items())
    out.print(f"forgot {n} records ({shown})", markup=False, highlight=False)


@memory_app.command("rebuild")
def rebuild(
    reembed: Annotated[bool, typer.Option("--reembed", help="Embed every record again (after changing the "
                                                            "embedder).")] = False,
    memory: MemoryRef = "default",
) -> None:
    """Recreate the vector index from the records (the records are the truth; the index can always be rebuilt)."""
    from agentforge.memory.chroma import ChromaStore

    with _store(memory, reembed=reembed) as store:
        if not isinstance(store, ChromaStore):
            raise _fail("an in_memory store has no index to rebuild", BAD_INPUT)
        n = store.index_count() if reembed else store.rebuild_index()
    out.print(f"indexed {n} records", highlight=False)
