"""A content-addressed disk cache of LLM responses, with a small in-memory front.

One JSON file per key under ``<dir>/<key[:2]>/<key>.json``, written atomically, so several
processes can share the folder without locks.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

from agentforge.logs import get_logger

log = get_logger(__name__)


class ResponseCache:
    def __init__(self, directory: Path | None, memory_items: int = 4096) -> None:
        self.directory = directory
        self._root = str(directory) if directory is not None else ""
        self._memory: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._memory_items = memory_items
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
            except (OSError, json.JSONDecodeError) as exc:
                # A torn or corrupt entry is a miss, and is overwritten by the next put.
                log.warning("llm_cache.unreadable", key=key, error=str(exc))
                data = None
            if data is not None:
                self._remember(key, data)
                self.hits += 1
                return data
        self.misses += 1
        return None

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._remember(key, value)
        if self.directory is None:
            return
        path = self._path(key)
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(value, fh, ensure_ascii=False)
            os.replace(tmp, path)
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
