"""The store of saved prompt-prefix states: longest-prefix lookup, the memory budget, the disk tier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agentforge.llm.prefix_cache import MIN_REUSE, PrefixCache, PrefixState, common_prefix


def state(tokens: list[int], kv_bytes: int = 1000) -> PrefixState:
    # The payload stands for llama.cpp's KV export; its first bytes name the tokens so a mix-up shows.
    head = bytes(str(tokens[:4]), "ascii")
    return PrefixState(tokens=np.asarray(tokens, dtype=np.int32), kv=head + bytes(kv_bytes - len(head)))


FAMILY_A = list(range(100, 160))
FAMILY_B = list(range(500, 560))


def test_common_prefix_counts_the_shared_leading_tokens() -> None:
    a = np.array([1, 2, 3, 4], dtype=np.int32)
    assert common_prefix(a, np.array([1, 2, 9], dtype=np.int32)) == 2
    assert common_prefix(a, a[:3]) == 3
    assert common_prefix(a, np.array([], dtype=np.int32)) == 0
    assert common_prefix(a, np.array([7], dtype=np.int32)) == 0


def test_lookup_returns_the_state_sharing_the_longest_prefix() -> None:
    cache = PrefixCache(budget_bytes=1 << 20)
    cache.put(state([*FAMILY_A, 1, 2]))
    cache.put(state([*FAMILY_B, 3]))
    found = cache.longest([*FAMILY_B, 4, 5])
    assert found is not None
    assert found[1] == len(FAMILY_B)
    assert found[0].tokens.tolist() == [*FAMILY_B, 3]


def test_a_prefix_no_longer_than_what_the_model_holds_is_not_offered() -> None:
    cache = PrefixCache(budget_bytes=1 << 20)
    cache.put(state([*FAMILY_A, 1]))
    assert cache.longest([*FAMILY_A, 2], better_than=len(FAMILY_A)) is None
    assert cache.longest([*FAMILY_A, 2], better_than=10) is not None


def test_a_short_shared_prefix_is_not_worth_a_restore() -> None:
    cache = PrefixCache(budget_bytes=1 << 20)
    cache.put(state(list(range(MIN_REUSE - 2)) + FAMILY_A))
    assert cache.longest(list(range(MIN_REUSE - 2)) + FAMILY_B) is None
    assert cache.stats.lookups == 1 and cache.stats.memory_hits == 0


def test_eviction_keeps_the_memory_budget_and_drops_the_least_recently_used() -> None:
    cache = PrefixCache(budget_bytes=5_000)
    families = [list(range(1000 * i, 1000 * i + 40)) for i in range(1, 9)]
    for i, family in enumerate(families):
        cache.put(state(family, kv_bytes=1000))
        if i >= 1:
            assert cache.longest(families[0] + [1]) is not None  # keeps family 0 the most recently used
        assert cache.stats.bytes <= cache.budget_bytes
    assert cache.stats.evicted >= 4
    assert cache.longest(families[0] + [1]) is not None
    assert cache.longest(families[1] + [1]) is None  # the oldest untouched family went first
    assert cache.longest(families[-1] + [1]) is not None
    assert cache.stats.bytes == sum(s.nbytes for s in cache._states.values())


def test_a_state_larger_than_the_whole_budget_is_not_kept() -> None:
    cache = PrefixCache(budget_bytes=500)
    cache.put(state(FAMILY_A, kv_bytes=1000))
    assert cache.stats.entries == 0 and cache.stats.bytes == 0


def test_a_state_that_extends_a_kept_one_replaces_it() -> None:
    cache = PrefixCache(budget_bytes=1 << 20)
    cache.put(state(FAMILY_A))
    cache.put(state([*FAMILY_A, 7, 8, 9]))
    assert cache.stats.entries == 1
    found = cache.longest([*FAMILY_A, 7, 8, 1])
    assert found is not None and found[1] == len(FAMILY_A) + 2


def test_a_prefix_saved_by_one_process_is_found_by_the_next_through_the_disk(tmp_path: Path) -> None:
    first = PrefixCache(budget_bytes=1 << 20, directory=tmp_path / "kv", disk_budget_bytes=1 << 20)
    first.put(state([*FAMILY_A, 1]))
    assert first.stats.disk_written == 1
    second = PrefixCache(budget_bytes=1 << 20, directory=tmp_path / "kv", disk_budget_bytes=1 << 20)
    found = second.longest([*FAMILY_A, 2])
    assert found is not None and found[1] == len(FAMILY_A)
    assert found[0].kv == state([*FAMILY_A, 1]).kv
    assert second.stats.disk_hits == 1
    assert second.longest([*FAMILY_A, 3]) is not None and second.stats.memory_hits == 1  # now in memory


def test_the_disk_keeps_one_state_per_prompt_family(tmp_path: Path) -> None:
    cache = PrefixCache(budget_bytes=1 << 20, directory=tmp_path, disk_budget_bytes=1 << 20)
    for question in range(5):
        cache.put(state([*FAMILY_A, question, question]))
    cache.put(state([*FAMILY_B, 1]))
    assert cache.stats.disk_written == 2
    assert len(list(tmp_path.glob("*.kv"))) == 2


def test_the_disk_budget_evicts_the_least_recently_used_files(tmp_path: Path) -> None:
    cache = PrefixCache(budget_bytes=1 << 20, directory=tmp_path, disk_budget_bytes=3_500)
    families = [list(range(1000 * i, 1000 * i + 40)) for i in range(1, 7)]
    for family in families:
        cache.put(state(family, kv_bytes=1000))
    assert sum(p.stat().st_size for p in tmp_path.glob("*.kv")) <= 3_500
    assert cache.stats.disk_evicted >= 3
    assert len(list(tmp_path.glob("*.tokens"))) == len(list(tmp_path.glob("*.kv")))


@pytest.mark.parametrize("damage", ["kv_removed", "folder_removed"])
def test_a_disk_entry_gone_meanwhile_is_a_clean_miss(tmp_path: Path, damage: str) -> None:
    folder = tmp_path / "kv"
    PrefixCache(budget_bytes=1 << 20, directory=folder, disk_budget_bytes=1 << 20).put(state([*FAMILY_A, 1]))
    reader = PrefixCache(budget_bytes=1 << 20, directory=folder, disk_budget_bytes=1 << 20)
    reader._list_disk()  # listed while whole, then damaged by another process
    if damage == "kv_removed":
        next(folder.glob("*.kv")).unlink()
    else:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    assert reader.longest([*FAMILY_A, 2]) is None


def test_an_unwritable_disk_costs_the_reuse_never_the_call(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = PrefixCache(budget_bytes=1 << 20, directory=blocker / "kv", disk_budget_bytes=1 << 20)
    cache.put(state(FAMILY_A))
    assert cache.stats.disk_written == 0
    assert cache.longest([*FAMILY_A, 1]) is not None
