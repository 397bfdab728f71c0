"""The prefix scheduler: queued calls to one model are admitted grouped by prompt prefix, without starving any."""

from __future__ import annotations

import asyncio
from itertools import pairwise
from pathlib import Path

import pytest

from agentforge.config import ModelAlias, Settings
from agentforge.llm.base import LLMRequest, Message, RawCompletion
from agentforge.llm.gateway import Gateway
from agentforge.llm.scheduler import Admission, PrefixScheduler, common_prefix_length
from agentforge.llm.scripted import register_script, unregister_script

# Two prompt families: a long shared system prompt and demos, then a short question.
PREFIX = {
    "A": "You add numbers. " + "Example: 2+3 -> 5. " * 40,
    "B": "You translate words. " + "Example: chat -> cat. " * 40,
}


def key(family: str, i: int) -> str:
    return f"{PREFIX[family]}question {i}"


async def settle(rounds: int = 10) -> None:
    """Let every ready task run until it blocks."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class Recorder:
    """Calls that take a slot, note the order they were admitted in, and hold it until told (or briefly)."""

    def __init__(self, scheduler: PrefixScheduler) -> None:
        self.scheduler = scheduler
        self.order: list[str] = []
        self.admissions: dict[str, Admission] = {}
        self.running = 0
        self.most_running = 0

    async def call(self, name: str, key: str, hold: asyncio.Event | None = None) -> None:
        async with self.scheduler.slot(key) as admission:
            self.order.append(name)
            self.admissions[name] = admission
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            try:
                if hold is not None:
                    await hold.wait()
                await asyncio.sleep(0)
            finally:
                self.running -= 1


async def queue_behind_holder(scheduler: PrefixScheduler, names: list[str]) -> Recorder:
    """A0 holds the only slot while ``names`` (e.g. 'B1') queue in that order; then A0 finishes."""
    rec = Recorder(scheduler)
    gate = asyncio.Event()
    holder = asyncio.create_task(rec.call("A0", key("A", 0), gate))
    await settle()
    tasks = [asyncio.create_task(rec.call(n, key(n[0], int(n[1:])))) for n in names]
    await settle()
    assert scheduler.waiting == len(names)
    gate.set()
    await asyncio.gather(holder, *tasks)
    return rec


def test_common_prefix_length_counts_shared_leading_characters() -> None:
    assert common_prefix_length("", "abc") == 0
    assert common_prefix_length("abc", "abc") == 3
    assert common_prefix_length("abcd", "abc") == 3
    assert common_prefix_length("xbc", "abc") == 0
    long = "p" * 5000
    for cut in (0, 1, 2, 17, 2500, 4999):
        assert common_prefix_length(long + "x", long[:cut] + "y" + long[cut + 1:]) == cut


async def test_queued_calls_are_admitted_grouped_by_the_prefix_of_the_call_that_ran_last() -> None:
    scheduler = PrefixScheduler(1)
    rec = await queue_behind_holder(scheduler, ["A1", "B1", "A2", "B2", "A3", "B3"])
    assert rec.order == ["A0", "A1", "A2", "A3", "B1", "B2", "B3"]
    # A2 and A3 went ahead of B1 (and A3 of B2 too); everything else ran in arrival order.
    assert scheduler.reordered == 2
    assert [rec.admissions[n].reordered for n in rec.order] == [False, False, True, True, False, False, False]
    assert rec.admissions["B1"].bypassed == 2
    assert rec.admissions["A2"].shared == len(key("A", 0)) - 1  # all but the question's digit


async def test_max_bypass_zero_is_first_come_first_served() -> None:
    scheduler = PrefixScheduler(1, max_bypass=0)
    rec = await queue_behind_holder(scheduler, ["A1", "B1", "A2", "B2", "A3", "B3"])
    assert rec.order == ["A0", "A1", "B1", "A2", "B2", "A3", "B3"]
    assert scheduler.reordered == 0


@pytest.mark.parametrize("max_bypass", [1, 3, 8])
async def test_a_lone_call_behind_an_endless_stream_of_another_family_waits_at_most_max_bypass(
        max_bypass: int) -> None:
    scheduler = PrefixScheduler(1, max_bypass=max_bypass)
    rec = Recorder(scheduler)
    stream: list[asyncio.Task[None]] = []

    async def a_call(i: int) -> None:
        async with scheduler.slot(key("A", i)) as admission:
            rec.order.append(f"A{i}")
            rec.admissions[f"A{i}"] = admission
            if i < 2 * max_bypass + 4:  # while it runs, the next A call arrives: A is never short of work
                stream.append(asyncio.create_task(a_call(i + 1)))
                await settle()

    first = asyncio.create_task(a_call(0))  # runs first and takes the free slot
    lone = asyncio.create_task(rec.call("C", "You write poems. question 0"))  # queues before A1 arrives
    await settle()
    assert rec.order == ["A0"] and scheduler.waiting == 2
    await first
    await lone
    while stream:
        await stream.pop()
    assert rec.admissions["C"].bypassed == max_bypass
    assert rec.order.index("C") == 1 + max_bypass  # after A0 and exactly max_bypass younger A calls
    assert rec.order[:1 + max_bypass] == [f"A{i}" for i in range(1 + max_bypass)]
    assert len(rec.order) == 2 * max_bypass + 6
    assert scheduler.free == 1 and scheduler.waiting == 0


async def test_a_cancelled_waiter_leaves_the_queue_and_never_takes_a_slot() -> None:
    scheduler = PrefixScheduler(1)
    rec = Recorder(scheduler)
    gate = asyncio.Event()
    holder = asyncio.create_task(rec.call("A0", key("A", 0), gate))
    await settle()
    doomed = asyncio.create_task(rec.call("A1", key("A", 1)))
    other = asyncio.create_task(rec.call("B1", key("B", 1)))
    await settle()
    assert scheduler.waiting == 2
    doomed.cancel()
    await settle()
    assert doomed.cancelled() and scheduler.waiting == 1
    gate.set()
    await asyncio.gather(holder, other)
    assert rec.order == ["A0", "B1"]
    assert scheduler.free == 1 and scheduler.waiting == 0
    async with asyncio.timeout(1):  # the slot is really free: a new call gets it at once
        await rec.call("B2", key("B", 2))


async def test_a_cancelled_holder_frees_its_slot_for_the_next_waiter() -> None:
    scheduler = PrefixScheduler(1)
    rec = Recorder(scheduler)
    holder = asyncio.create_task(rec.call("A0", key("A", 0), asyncio.Event()))  # would hold forever
    await settle()
    waiter = asyncio.create_task(rec.call("B1", key("B", 1)))
    await settle()
    assert scheduler.free == 0 and scheduler.waiting == 1
    holder.cancel()
    async with asyncio.timeout(1):
        await waiter
    assert holder.cancelled()
    assert rec.order == ["A0", "B1"]
    assert scheduler.free == 1 and scheduler.waiting == 0 and rec.running == 0


async def test_a_waiter_cancelled_just_after_being_granted_passes_the_slot_on() -> None:
    scheduler = PrefixScheduler(1)
    rec = Recorder(scheduler)
    held = scheduler.slot(key("A", 0))
    await held.__aenter__()
    granted = asyncio.create_task(rec.call("A1", key("A", 1)))
    later = asyncio.create_task(rec.call("B1", key("B", 1)))
    await settle()
    await held.__aexit__(None, None, None)  # grants A1 ...
    granted.cancel()  # ... which is cancelled before it could resume
    async with asyncio.timeout(1):
        await later
    assert granted.cancelled()
    assert rec.order == ["B1"]
    assert scheduler.free == 1 and scheduler.waiting == 0


async def test_a_release_between_a_waiters_cancellation_and_its_cleanup_skips_that_waiter() -> None:
    scheduler = PrefixScheduler(1)
    rec = Recorder(scheduler)
    held = scheduler.slot(key("A", 0))
    await held.__aenter__()
    doomed = asyncio.create_task(rec.call("A1", key("A", 1)))
    later = asyncio.create_task(rec.call("B1", key("B", 1)))
    await settle()
    doomed.cancel()  # its future is cancelled now, its except clause runs later
    await held.__aexit__(None, None, None)
    async with asyncio.timeout(1):
        await later
    await asyncio.gather(doomed, return_exceptions=True)
    assert doomed.cancelled()
    assert rec.order == ["B1"]
    assert scheduler.free == 1 and scheduler.waiting == 0


async def test_two_slots_run_two_calls_at_once_and_each_freed_slot_goes_to_its_own_family() -> None:
    scheduler = PrefixScheduler(2)
    rec = Recorder(scheduler)
    gates = {"A0": asyncio.Event(), "B0": asyncio.Event()}
    holders = [asyncio.create_task(rec.call(n, key(n[0], 0), gates[n])) for n in ("A0", "B0")]
    await settle()
    assert scheduler.free == 0
    queued = [asyncio.create_task(rec.call(n, key(n[0], int(n[1:]))))
              for n in ("A1", "A2", "B1", "A3", "B2")]
    await settle()
    assert scheduler.waiting == 5
    gates["B0"].set()  # B0's slot frees first: B1 takes it, ahead of the older A1 and A2
    await settle()
    assert rec.order[:3] == ["A0", "B0", "B1"]
    gates["A0"].set()
    await asyncio.gather(*holders, *queued)
    assert sorted(rec.order) == sorted(["A0", "B0", "A1", "A2", "B1", "A3", "B2"])
    assert rec.most_running == 2
    assert scheduler.free == 2 and scheduler.waiting == 0


async def test_many_calls_on_two_slots_never_exceed_two_and_all_finish() -> None:
    scheduler = PrefixScheduler(2, max_bypass=2)
    rec = Recorder(scheduler)
    names = [f"{'AB'[i % 2]}{i}" for i in range(40)]
    await asyncio.gather(*(rec.call(n, key(n[0], int(n[1:]))) for n in names))
    assert sorted(rec.order) == sorted(names)
    assert rec.most_running == 2
    assert all(a.bypassed <= 2 for a in rec.admissions.values())
    assert scheduler.free == 2 and scheduler.waiting == 0


def test_a_scheduler_needs_a_slot_and_a_non_negative_bypass_bound() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        PrefixScheduler(0)
    with pytest.raises(ValueError, match="max_bypass"):
        PrefixScheduler(1, max_bypass=-1)


# --- through the gateway --------------------------------------------------------------------------------

class FamilyBackend:
    """A backend that notes which prompt family each call it serves belongs to, and answers its question."""

    def __init__(self) -> None:
        self.families: list[str] = []

    async def acomplete(self, request: LLMRequest) -> RawCompletion:
        system = request.messages[0].content
        self.families.append(next(f for f, p in PREFIX.items() if system == p))
        await asyncio.sleep(0.002)
        return RawCompletion(texts=(f"answer to {request.messages[-1].content}",))


def family_request(model: str, family: str, i: int) -> LLMRequest:
    return LLMRequest(model=model, messages=(
        Message(role="system", content=PREFIX[family]), Message(role="user", content=f"{family} task {i}")))


async def evaluate_interleaved(gateway: Gateway, model: str, per_family: int = 8,
                               concurrency: int = 8) -> list[tuple[LLMRequest, str]]:
    """Two families' calls submitted alternately (A0 B0 A1 B1 ...), at most ``concurrency`` in flight."""
    requests = [family_request(model, f, i) for i in range(per_family) for f in ("A", "B")]
    gate = asyncio.Semaphore(concurrency)

    async def one(req: LLMRequest) -> tuple[LLMRequest, str]:
        async with gate:
            return req, (await gateway.acomplete(req)).text

    return await asyncio.gather(*(one(r) for r in requests))


def switches(families: list[str]) -> int:
    return sum(a != b for a, b in pairwise(families))


async def test_gateway_groups_interleaved_local_calls_by_family_and_answers_each_caller(tmp_path: Path) -> None:
    backend = FamilyBackend()
    gateway = Gateway(Settings(home=tmp_path, cache_enabled=False), backend=backend)
    results = await evaluate_interleaved(gateway, "local/test-model")
    assert all(text == f"answer to {req.messages[-1].content}" for req, text in results)
    assert sorted(backend.families) == ["A"] * 8 + ["B"] * 8
    # Arrival order alternates families (15 switches); admission by prefix runs each family in long stretches.
    assert switches(backend.families) <= 3
    assert gateway.stats.reordered > 0
    assert gateway.stats.calls == 16


async def test_gateway_keeps_arrival_order_for_models_that_are_not_local(tmp_path: Path) -> None:
    backend = FamilyBackend()
    register_script("fifo-family", backend)  # type: ignore[arg-type]
    settings = Settings(home=tmp_path, cache_enabled=False,
                        models={"one-at-a-time": ModelAlias(model="scripted/fifo-family", max_concurrency=1)})
    gateway = Gateway(settings)
    try:
        results = await evaluate_interleaved(gateway, "one-at-a-time")
    finally:
        unregister_script("fifo-family")
    assert all(text == f"answer to {req.messages[-1].content}" for req, text in results)
    assert backend.families == ["A", "B"] * 8
    assert gateway.stats.reordered == 0
