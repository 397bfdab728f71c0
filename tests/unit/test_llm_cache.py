"""The disk cache of LLM responses: atomic writes that other processes (and a new gateway) can read."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from agentforge.llm.cache import ResponseCache

KEY = "ab" + "0" * 62


def test_an_entry_written_by_one_cache_is_read_by_a_fresh_one(tmp_path: Path) -> None:
    ResponseCache(tmp_path).put(KEY, {"texts": ["hi"], "usage": {"prompt_tokens": 3}})
    fresh = ResponseCache(tmp_path)
    assert fresh.get(KEY) == {"texts": ["hi"], "usage": {"prompt_tokens": 3}}
    assert (fresh.hits, fresh.misses) == (1, 0)


def test_writes_leave_only_the_entry_and_no_temporary_files(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    for i in range(3):
        cache.put(KEY, {"texts": [f"v{i}"]})
    assert sorted(os.listdir(tmp_path / "ab")) == [KEY + ".json"]
    assert json.loads((tmp_path / "ab" / (KEY + ".json")).read_text()) == {"texts": ["v2"]}


def test_a_cache_folder_removed_while_in_use_is_made_again(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c")
    cache.put(KEY, {"texts": ["one"]})
    shutil.rmtree(tmp_path / "c")  # e.g. the user cleared the cache during a long evaluation
    cache.put(KEY, {"texts": ["two"]})
    assert ResponseCache(tmp_path / "c").get(KEY) == {"texts": ["two"]}


def test_a_torn_entry_is_a_miss_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "ab").mkdir()
    (tmp_path / "ab" / (KEY + ".json")).write_text('{"texts": [')
    cache = ResponseCache(tmp_path)
    assert cache.get(KEY) is None and cache.misses == 1


def test_a_memory_only_cache_touches_no_disk(tmp_path: Path) -> None:
    cache = ResponseCache(None)
    cache.put(KEY, {"texts": ["x"]})
    assert cache.get(KEY) == {"texts": ["x"]}
    assert list(tmp_path.iterdir()) == []
