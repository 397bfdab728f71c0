"""A per-run cgroup: one folder per controller hierarchy, capping the run's tasks (``pids``) and its total
memory (``memory``), for any caller allowed to make one (root, in practice).

cgroup v1 keeps each controller in its own hierarchy (``/sys/fs/cgroup/pids/...``,
``/sys/fs/cgroup/memory/...``), so a run gets one folder in each; cgroup v2 has one hierarchy and one
folder holds both limits. Every folder sits under ``<the caller's own cgroup>/agentforge-sandbox``, and
folders left behind (a run's processes still dying) are swept by later runs.

The memory limit covers every process of the run plus what they write to tmpfs (the scratch folder and
the workspace), with swap off; when it is hit the kernel kills a process in the cgroup and counts an
``oom_kill``, which :meth:`RunCgroup.oom_kills` reads so the run can be reported as over its memory limit.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from agentforge.logs import get_logger

__all__ = ["RunCgroup", "cgroup_parents", "open_run_cgroup"]

log = get_logger(__name__)

_MOUNT = Path("/sys/fs/cgroup")
_STALE_S = 60.0
_CONTROLLERS = ("pids", "memory")
_ids = itertools.count()


@cache
def cgroup_parents() -> dict[str, Path]:
    """Controller name → the folder this process puts its runs' cgroups in, for each controller it can
    use here (none when it may not write cgroups). Checked once per process; a missing controller is
    logged once."""
    try:
        lines = Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    parents: dict[str, Path] = {}
    for wanted in _CONTROLLERS:
        for line in lines:
            hierarchy, controllers, own = line.split(":", 2)
            if wanted in controllers.split(","):
                base = _MOUNT / controllers
            elif hierarchy == "0" and not controllers:
                base = _MOUNT if (_MOUNT / "cgroup.controllers").exists() else _MOUNT / "unified"
                try:
                    if wanted not in (base / "cgroup.controllers").read_text(encoding="utf-8").split():
                        continue
                except OSError:
                    continue
            else:
                continue
            parent = base / own.lstrip("/") / "agentforge-sandbox"
            try:
                parent.mkdir(exist_ok=True)
                if hierarchy == "0":  # cgroup v2: a child gets the controller only when its parent delegates it
                    (parent / "cgroup.subtree_control").write_text(f"+{wanted}", encoding="utf-8")
            except OSError:
                continue
            parents[wanted] = parent
            break
    missing = [c for c in _CONTROLLERS if c not in parents]
    if missing:
        log.warning("sandbox.no_cgroup", controllers=missing,
                    effect="the run's total memory is not capped (each process still is)" if "memory" in missing
                    else "the run's tasks are capped by RLIMIT_NPROC only (which does not bind root)")
    return parents


@dataclass(frozen=True)
class RunCgroup:
    """The folders of one run's cgroup (one per hierarchy) and which of them holds its memory limit."""

    folders: tuple[Path, ...]
    memory: Path | None
    pids: Path | None

    @property
    def procs_files(self) -> tuple[str, ...]:
        """The ``cgroup.procs`` files a process writes its pid to, to join the run's cgroup everywhere."""
        return tuple(str(folder / "cgroup.procs") for folder in self.folders)

    def oom_kills(self) -> int:
        """How many of the run's processes the kernel killed for the memory limit (0 when not capped)."""
        if self.memory is None:
            return 0
        name = "memory.events" if (self.memory / "memory.events").exists() else "memory.oom_control"
        try:
            text = (self.memory / name).read_text(encoding="utf-8")
        except OSError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def close(self) -> None:
        """Remove the run's folders; one whose processes are still dying is removed by a later sweep."""
        for folder in self.folders:
            with contextlib.suppress(OSError):
                folder.rmdir()


def open_run_cgroup(*, max_tasks: int, memory_bytes: int) -> RunCgroup | None:
    """A new cgroup capping a run at ``max_tasks`` tasks and ``memory_bytes`` of memory (no swap), in every
    controller this machine lets the caller use; None where it allows none."""
    parents = cgroup_parents()
    if not parents:
        return None
    name = f"run-{os.getpid()}-{next(_ids)}"
    folders: dict[Path, Path] = {}  # parent → the run's folder there (v2: one parent for both controllers)
    for parent in dict.fromkeys(parents.values()):
        _sweep(parent)
        folders[parent] = parent / name
    try:
        for folder in folders.values():
            folder.mkdir()
        pids = folders[parents["pids"]] if "pids" in parents else None
        memory = folders[parents["memory"]] if "memory" in parents else None
        if pids is not None:
            (pids / "pids.max").write_text(str(max_tasks), encoding="utf-8")
        if memory is not None:
            _limit_memory(memory, memory_bytes)
    except OSError as exc:
        log.warning("sandbox.cgroup_failed", folders=[str(f) for f in folders.values()], error=str(exc))
        RunCgroup(tuple(folders.values()), None, None).close()
        return None
    return RunCgroup(tuple(folders.values()), memory, pids)


def _limit_memory(folder: Path, limit: int) -> None:
    if (folder / "memory.max").exists():  # cgroup v2
        (folder / "memory.max").write_text(str(limit), encoding="utf-8")
        swap = folder / "memory.swap.max"
    else:
        (folder / "memory.limit_in_bytes").write_text(str(limit), encoding="utf-8")
        swap = folder / "memory.memsw.limit_in_bytes"  # memory plus swap: equal to the limit means no swap
    if swap.exists():
        swap.write_text("0" if swap.name == "memory.swap.max" else str(limit), encoding="utf-8")


def _sweep(parent: Path) -> None:
    now = time.time()
    try:
        children = list(parent.iterdir())
    except OSError:
        return
    for child in children:
        try:
            if child.is_dir() and now - child.stat().st_mtime > _STALE_S:
                child.rmdir()  # fails, harmlessly, while any process is left in it
        except OSError:
            continue
