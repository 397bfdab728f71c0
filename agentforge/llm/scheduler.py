"""Admission to a model that runs few calls at once, ordered so calls sharing a prompt prefix run back to back.

The embedded model keeps the KV state of the prompt it read last: a call that shares a long prefix with it
pays only for the new tail, a call from another prompt family pays for re-reading everything. When several
calls wait for a slot, :class:`PrefixScheduler` admits the one whose key (its prompt text) shares the
longest prefix with the call that just freed the slot, oldest first among equals. A waiting call is passed
over by younger calls at most ``max_bypass`` times, then it runs next whatever its prefix, so no call
starves. ``max_bypass=0`` is plain first-come first-served.

One scheduler serves one event loop, like the ``asyncio.Semaphore`` it stands in for.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

DEFAULT_MAX_BYPASS = 8

__all__ = ["DEFAULT_MAX_BYPASS", "Admission", "PrefixScheduler", "common_prefix_length"]


@dataclass(frozen=True)
class Admission:
    """How a call got its slot: ``reordered`` when an older waiter was still queued (FIFO would have
    admitted that one), ``bypassed`` how many younger calls were admitted before it, ``shared`` how many
    leading characters its key shares with the key of the slot's previous call."""

    reordered: bool = False
    bypassed: int = 0
    shared: int = 0


@dataclass(eq=False)
class _Waiter:
    key: str
    future: asyncio.Future[Admission]
    bypassed: int = 0


def common_prefix_length(a: str, b: str) -> int:
    """The number of leading characters ``a`` and ``b`` share.

    Binary search over slice comparisons: each comparison runs in C, so long prompts cost
    O(n log n) machine work instead of a Python loop over every character.
    """
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo] and a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


class PrefixScheduler:
    """``size`` slots for one model; ``async with scheduler.slot(key) as admission:`` holds one."""

    def __init__(self, size: int = 1, *, max_bypass: int = DEFAULT_MAX_BYPASS) -> None:
        if size < 1:
            raise ValueError(f"a scheduler needs at least one slot, got {size}")
        if max_bypass < 0:
            raise ValueError(f"max_bypass is 0 or more, got {max_bypass}")
        self.size = size
        self.max_bypass = max_bypass
        self._free = size
        self._waiters: list[_Waiter] = []  # arrival order
        self._last = ""  # the key of the call that most recently held a slot
        self.admitted = 0
        self.reordered = 0

    @property
    def free(self) -> int:
        """Slots not held by any call."""
        return self._free

    @property
    def waiting(self) -> int:
        """Calls queued for a slot."""
        return len(self._waiters)

    @asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[Admission]:
        """Wait for a slot (grouped by ``key``'s prefix), hold it for the block, free it on any exit."""
        admission = await self._acquire(key)
        try:
            yield admission
        finally:
            self._release(key)

    async def _acquire(self, key: str) -> Admission:
        if self._free and not self._waiters:
            self._free -= 1
            admission = Admission(shared=common_prefix_length(key, self._last))
            self._last = key
            self.admitted += 1
            return admission
        waiter = _Waiter(key, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            return await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self._release(key)  # granted, then cancelled before it could run: pass the slot on
            elif waiter in self._waiters:  # a release in between may have dropped it already
                self._waiters.remove(waiter)
            raise

    def _release(self, key: str) -> None:
        self._free += 1
        if any(w.future.cancelled() for w in self._waiters):
            # Cancelled tasks whose except clause has not run yet: never grant them a slot.
            self._waiters = [w for w in self._waiters if not w.future.cancelled()]
        while self._free and self._waiters:
            index, shared = self._pick(key)
            waiter = self._waiters.pop(index)
            for older in self._waiters[:index]:
                older.bypassed += 1
            self._free -= 1
            self._last = waiter.key
            self.admitted += 1
            if index:
                self.reordered += 1
            waiter.future.set_result(Admission(reordered=index > 0, bypassed=waiter.bypassed, shared=shared))

    def _pick(self, previous: str) -> tuple[int, int]:
        """The index of the waiter to admit after ``previous`` freed a slot, and the prefix they share.

        Bypass counts never increase from older to younger waiters (admitting waiter i bumps every waiter
        before it), so checking the oldest alone enforces the bound for all.
        """
        oldest = self._waiters[0]
        best, best_shared = 0, common_prefix_length(oldest.key, previous)
        if oldest.bypassed >= self.max_bypass:
            return best, best_shared
        for index in range(1, len(self._waiters)):
            shared = common_prefix_length(self._waiters[index].key, previous)
            if shared > best_shared:
                best, best_shared = index, shared
        return best, best_shared
