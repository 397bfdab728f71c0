"""A content-addressed disk cache of LLM responses, with a small in-memory front.

One JSON file per key under ``<dir>/<key[:2]>/<key>.json``, written atomically, so several
processes can share the folder without locks. An entry that cannot be read (torn, not UTF-8, not a JSON
object, or rejected by its reader) is a logged miss, never an error.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

from agentforge.logs import get_logger

log = get_logger(__name__)

# Temporary names are unique per process and write, so concurrent writers never share one.
_write_seq = itertools.count()


class ResponseCache:
    def __init__(self, directory: Path | None, memory_items: int = 4096) -> None:
        self.directory = directory
        self._root = str(directory) if directory is not None else ""
        self._memory: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._memory_items = memory_items
        self._folders: set[str] = set()  # shard folders known to exist, so a write skips makedirs
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> str:
        # Plain strings: building pathlib objects was a measurable part of a cached evaluation.
        return os.path.join(self._root, key[:2], key + ".json")

    def get(self, key: str) -> dict[str, Any] | None:
        if key in self._memory:
            self._memory.move_to_end(key)
            self.hits += 1
            return self._memory[key]
        if self.directory is not None:
            try:
                with open(self._path(key), encoding="utf-8") as fh:
                    data = json.load(fh)
            except FileNotFoundError:
                data = None
            except (OSError, ValueError) as exc:  # ValueError: a torn entry, or bytes that are not UTF-8
                # A torn or corrupt entry is a miss, and is overwritten by the next put.
                log.warning("llm_cache.unreadable", key=key, error=f"{type(exc).__name__}: {exc}")
                data = None
            if data is not None and not isinstance(data, dict):
                log.warning("llm_cache.unreadable", key=key,
                            error=f"an entry is a JSON object, not {type(data).__name__}")
                data = None
            if data is not None:
                self._remember(key, data)
                self.hits += 1
                return data
        self.misses += 1
        return None

    def reject(self, key: str, reason: str) -> None:
        """Count the hit ``get`` just returned for ``key`` as a miss: its caller found the entry unusable.

        The entry is forgotten in memory, logged, and overwritten by the next ``put``."""
        self._memory.pop(key, None)
        self.hits -= 1
        self.misses += 1
        log.warning("llm_cache.unreadable", key=key, error=reason)

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._remember(key, value)
        if self.directory is None:
            return
        folder = os.path.join(self._root, key[:2])
        path = os.path.join(folder, key + ".json")
        tmp = f"{path}.{os.getpid()}-{next(_write_seq)}.tmp"
        text = json.dumps(value, ensure_ascii=False)
        for attempt in (1, 2):
            if folder not in self._folders:
                os.makedirs(folder, exist_ok=True)
                self._folders.add(folder)
            try:
                with open(tmp, "w", encoding="utf-8") as fh:
                    fh.write(text)
                os.replace(tmp, path)  # atomic: readers see the old entry or the new one, never a torn one
                return
            except FileNotFoundError:
                if attempt == 2:
                    raise
                self._folders.discard(folder)  # the folder was removed under us (a cleared cache): remake it
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise

    def _remember(self, key: str, value: dict[str, Any]) -> None:
        self._memory[key] = value
        self._memory.move_to_end(key)
        while len(self._memory) > self._memory_items:
            self._memory.popitem(last=False)

    def clear_memory(self) -> None:
        self._memory.clear()
