"""Saved KV states of prompt prefixes, so a prompt the local model has read before is not read again.

A :class:`PrefixState` is the key/value cache of one token sequence as llama.cpp exports it for one
sequence (``llama_state_seq_get_data``): about 12 KB per token for the shipped 0.5B model, copied in or out
in milliseconds, against seconds to re-read the prompt. :class:`PrefixCache` keeps them in memory under a
byte budget, least recently used evicted first, and optionally on disk (under its own budget) so a prefix
warmed by one process or run is found by the next. A lookup answers the saved state sharing the longest
prefix with a prompt; the model then reads only the rest.

This module knows nothing of llama.cpp: ``llm.local`` captures and restores states and asks here which to use.
Disk entries are two files per state, ``<id>.tokens`` (int32) and ``<id>.kv``, written atomically; several
processes may share the folder.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agentforge.logs import get_logger

__all__ = ["PrefixCache", "PrefixCacheStats", "PrefixState", "common_prefix"]

log = get_logger(__name__)

MIN_REUSE = 16  # shorter shared prefixes are not worth a restore


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


@dataclass(frozen=True)
class PrefixState:
    """The KV cache of ``tokens`` (the model has read exactly these), as llama.cpp exports one sequence."""

    tokens: np.ndarray
    kv: bytes

    @property
    def nbytes(self) -> int:
        return len(self.kv) + self.tokens.nbytes

    @property
    def input_ids(self) -> np.ndarray:  # the name llama-cpp-python reads a cached state's tokens by
        return self.tokens

    @property
    def key(self) -> str:
        return hashlib.sha256(self.tokens.astype(np.int32).tobytes()).hexdigest()[:32]


@dataclass
class PrefixCacheStats:
    lookups: int = 0
    memory_hits: int = 0
    disk_hits: int = 0
    saved: int = 0
    evicted: int = 0
    disk_written: int = 0
    disk_evicted: int = 0
    bytes: int = 0
    entries: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _DiskEntry:
    tokens: np.ndarray
    path: Path


@dataclass
class PrefixCache:
    """States by token sequence: ``budget_bytes`` in memory, ``disk_budget_bytes`` in ``directory``."""

    budget_bytes: int
    directory: Path | None = None
    disk_budget_bytes: int = 0
    stats: PrefixCacheStats = field(default_factory=PrefixCacheStats)

    def __post_init__(self) -> None:
        self._states: OrderedDict[str, PrefixState] = OrderedDict()
        self._lock = threading.Lock()
        self._disk: dict[str, _DiskEntry] = {}
        self._disk_seen = -1.0  # the folder's mtime when last listed

    # -- lookup ----------------------------------------------------------------------------------------
    def longest(self, tokens: Sequence[int] | np.ndarray, *, better_than: int = 0) -> tuple[PrefixState, int] | None:
        """The saved state sharing the longest prefix with ``tokens`` and how many tokens it shares, when that
        is more than ``better_than`` (what the model holds already) and at least ``MIN_REUSE``."""
        wanted = np.asarray(tokens, dtype=np.int32)
        floor = max(better_than, MIN_REUSE - 1)
        with self._lock:
            self.stats.lookups += 1
            best: tuple[str, int] | None = None
            for key, state in self._states.items():
                shared = common_prefix(state.tokens, wanted)
                if shared > floor and (best is None or shared > best[1]):
                    best = (key, shared)
            disk = self._longest_on_disk(wanted, max(floor, best[1] if best else 0))
            if disk is not None:
                state = self._read(disk[0])
                if state is not None:
                    self.stats.disk_hits += 1
                    self._remember(state)
                    return state, disk[1]
            if best is None:
                return None
            self._states.move_to_end(best[0])
            self.stats.memory_hits += 1
            return self._states[best[0]], best[1]

    # -- saving ----------------------------------------------------------------------------------------
    def put(self, state: PrefixState) -> None:
        """Keep ``state`` (a state whose tokens extend a kept one replaces it); write it to disk when no disk
        entry already shares half of its tokens."""
        if len(state.tokens) < MIN_REUSE or state.nbytes > self.budget_bytes:
            return
        with self._lock:
            covered = [k for k, s in self._states.items()
                       if len(s.tokens) <= len(state.tokens) and common_prefix(s.tokens, state.tokens) == len(s.tokens)]
            for key in covered:
                self._drop(key)
            self._remember(state)
            self.stats.saved += 1
            if self.directory is not None and self.disk_budget_bytes > 0:
                shared = self._longest_on_disk(state.tokens, 0)
                if shared is None or shared[1] * 2 < len(state.tokens):
                    self._write(state)

    def _remember(self, state: PrefixState) -> None:
        key = state.key
        if key in self._states:
            self._states.move_to_end(key)
            return
        self._states[key] = state
        self.stats.bytes += state.nbytes
        while self.stats.bytes > self.budget_bytes and len(self._states) > 1:
            oldest = next(iter(self._states))
            self._drop(oldest)
            self.stats.evicted += 1
            if self.stats.evicted in (1, 10) or self.stats.evicted % 100 == 0:  # reported, not per eviction
                log.info("prefix_cache.evicting", budget_mb=self.budget_bytes >> 20, kept=len(self._states),
                         **self.stats.as_dict())
        self.stats.entries = len(self._states)

    def _drop(self, key: str) -> None:
        state = self._states.pop(key)
        self.stats.bytes -= state.nbytes
        self.stats.entries = len(self._states)

    def clear(self) -> None:
        """Forget every state in memory (disk entries stay)."""
        with self._lock:
            self._states.clear()
            self.stats.bytes = self.stats.entries = 0

    # -- disk ------------------------------------------------------------------------------------------
    def _list_disk(self) -> None:
        assert self.directory is not None
        try:
            seen = self.directory.stat().st_mtime
        except OSError:  # not made yet, removed, or not a folder: nothing on disk
            self._disk.clear()
            self._disk_seen = -1.0
            return
        if seen == self._disk_seen:
            return
        entries: dict[str, _DiskEntry] = {}
        for path in self.directory.glob("*.tokens"):
            key = path.stem
            known = self._disk.get(key)
            if known is not None:
                entries[key] = known
                continue
            try:
                tokens = np.fromfile(path, dtype=np.int32)
            except OSError:
                continue
            entries[key] = _DiskEntry(tokens=tokens, path=path.with_suffix(".kv"))
        self._disk, self._disk_seen = entries, seen

    def _longest_on_disk(self, tokens: np.ndarray, floor: int) -> tuple[str, int] | None:
        if self.directory is None or self.disk_budget_bytes <= 0:
            return None
        self._list_disk()
        best: tuple[str, int] | None = None
        for key, entry in self._disk.items():
            shared = common_prefix(entry.tokens, tokens)
            if shared > floor and (best is None or shared > best[1]):
                best = (key, shared)
        return best

    def _read(self, key: str) -> PrefixState | None:
        entry = self._disk[key]
        try:
            kv = entry.path.read_bytes()
            os.utime(entry.path)  # recently used: evicted last
        except OSError as exc:  # another process evicted it meanwhile
            log.debug("prefix_cache.disk_read_failed", key=key, error=str(exc))
            self._disk.pop(key, None)
            return None
        return PrefixState(tokens=entry.tokens, kv=kv)

    def _write(self, state: PrefixState) -> None:
        assert self.directory is not None
        key = state.key
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # The .kv first: an entry is listed by its .tokens file, which appears only once both are whole.
            for suffix, data in ((".kv", state.kv), (".tokens", state.tokens.astype(np.int32).tobytes())):
                tmp = self.directory / f".{key}{suffix}.{os.getpid()}.tmp"
                tmp.write_bytes(data)
                os.replace(tmp, self.directory / f"{key}{suffix}")
        except OSError as exc:  # a full or read-only disk costs the reuse, never the call
            log.warning("prefix_cache.disk_write_failed", directory=str(self.directory), error=str(exc))
            return
        self.stats.disk_written += 1
        self._evict_disk()

    def _evict_disk(self) -> None:
        assert self.directory is not None
        files = []
        for kv in self.directory.glob("*.kv"):
            try:
                st = kv.stat()
            except FileNotFoundError:
                continue
            files.append((st.st_mtime, st.st_size, kv))
        total = sum(size for _, size, _ in files)
        for _, size, kv in sorted(files):
            if total <= self.disk_budget_bytes:
                break
            for path in (kv.with_suffix(".tokens"), kv):
                path.unlink(missing_ok=True)
            self._disk.pop(kv.stem, None)
            total -= size
            self.stats.disk_evicted += 1
