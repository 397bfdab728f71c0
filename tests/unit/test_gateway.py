"""The gateway: cache, retries, concurrency limits, aliases, accounting, and litellm error mapping."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

import pytest

from agentforge.config import ModelAlias, Settings
from agentforge.errors import (
    AgentforgeError,
    Auth,
    ContextWindow,
    LLMError,
    ModelNotFound,
    RateLimit,
    Transport,
)
from agentforge.llm.base import LLMRequest, Message, RawCompletion, Usage
from agentforge.llm.gateway import Gateway, RetryPolicy, map_litellm_error
from agentforge.llm.scripted import register_script

FAST_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.002)


def request(model: str, text: str = "hi", **kw: Any) -> LLMRequest:
    return LLMRequest(model=model, messages=(Message(role="user", content=text),), **kw)


@pytest.fixture
def gateway(tmp_path: Path) -> Gateway:
    return Gateway(Settings(home=tmp_path / "home"), retry=FAST_RETRY)


async def test_temperature_zero_calls_are_cached_on_disk_and_cost_nothing_again(
        gateway: Gateway, scripted: Any, tmp_path: Path) -> None:
    model, script = scripted
    script.default = "answer"
    first = await gateway.acomplete(request(model))
    second = await gateway.acomplete(request(model))
    assert (first.cached, second.cached) == (False, True)
    assert second.text == "answer" and len(script.calls) == 1
    # A new gateway (a new process, in effect) finds the entry on disk.
    fresh = Gateway(Settings(home=tmp_path / "home"))
    third = await fresh.acomplete(request(model))
    assert third.cached and len(script.calls) == 1
    assert gateway.stats.calls == 2 and gateway.stats.cache_hits == 1


async def test_sampling_calls_are_not_cached_unless_asked(gateway: Gateway, scripted: Any) -> None:
    model, script = scripted
    script.default = "x"
    await gateway.acomplete(request(model, temperature=0.7))
    await gateway.acomplete(request(model, temperature=0.7))
    assert len(script.calls) == 2
    await gateway.acomplete(request(model, temperature=0.7, cache=True))
    hit = await gateway.acomplete(request(model, temperature=0.7, cache=True))
    assert hit.cached and len(script.calls) == 3


def test_cache_key_covers_what_changes_the_answer_and_never_the_api_key() -> None:
    base = request("openai/x")
    assert base.cache_key() == request("openai/x", api_key="sk-secret").cache_key()
    for changed in (request("openai/y"), request("openai/x", text="other"), request("openai/x", seed=1),
                    request("openai/x", max_tokens=5), request("openai/x", response_schema={"type": "object"})):
        assert changed.cache_key() != base.cache_key()


def test_disabled_cache_never_writes_to_disk(tmp_path: Path, scripted: Any) -> None:
    model, script = scripted
    script.default = "x"
    gw = Gateway(Settings(home=tmp_path / "h", cache_enabled=False))
    gw.complete(request(model))
    gw.cache.clear_memory()
    gw.complete(request(model))
    assert len(script.calls) == 2
    assert not (tmp_path / "h" / "llm-cache").exists()


async def test_transient_errors_are_retried_with_backoff_then_succeed(gateway: Gateway, scripted: Any) -> None:
    model, script = scripted

    replies = iter([RateLimit("slow down"), Transport("reset"), "finally"])

    def reply(_: LLMRequest) -> str:
        item = next(replies)
        if isinstance(item, Exception):
            raise item
        return item

    script.default = reply
    response = await gateway.acomplete(request(model))
    assert response.text == "finally" and response.attempts == 3
    assert gateway.stats.retries == 2


async def test_retries_give_up_after_max_attempts(gateway: Gateway, scripted: Any) -> None:
    model, script = scripted
    script.default = Transport("down")
    with pytest.raises(Transport):
        await gateway.acomplete(request(model))
    assert len(script.calls) == FAST_RETRY.max_attempts


async def test_permanent_errors_are_not_retried(gateway: Gateway, scripted: Any) -> None:
    model, script = scripted
    script.default = Auth("bad key")
    with pytest.raises(Auth):
        await gateway.acomplete(request(model))
    assert len(script.calls) == 1


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    import random

    policy = RetryPolicy(initial_delay=0.5, backoff=2, max_delay=3, jitter=0)
    rng = random.Random(0)
    assert [policy.delay(a, rng) for a in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3, 3]


async def test_concurrency_is_limited_per_model(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, models={"narrow": ModelAlias(model="scripted/narrow", max_concurrency=2)})
    gw = Gateway(settings)
    state = {"now": 0, "max": 0}

    class Slow:
        async def acomplete(self, req: LLMRequest) -> RawCompletion:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            await asyncio.sleep(0.02)
            state["now"] -= 1
            return RawCompletion(texts=("ok",))

    register_script("narrow", Slow())  # type: ignore[arg-type]
    await asyncio.gather(*(gw.acomplete(request("narrow", text=str(i))) for i in range(8)))
    assert state["max"] == 2


def test_aliases_resolve_to_model_and_parameters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-123")
    settings = Settings(home=tmp_path, models={
        "fast": ModelAlias(model="openai/gpt-4o-mini", api_base="http://127.0.0.1:1/v1", api_key_env="MY_KEY",
                           params={"max_tokens": 64})})
    prepared = Gateway(settings).prepare(request("fast"))
    assert prepared.model == "openai/gpt-4o-mini"
    assert prepared.api_base == "http://127.0.0.1:1/v1" and prepared.api_key == "sk-123"
    assert prepared.max_tokens == 64
    assert Gateway(settings).resolve("local").model == "local/qwen2.5-coder-0.5b-instruct"


def test_unknown_alias_is_a_model_not_found_error(gateway: Gateway) -> None:
    with pytest.raises(ModelNotFound, match="unknown model 'fastt'"):
        gateway.complete(request("fastt"))


def test_unknown_scripted_model_is_reported(gateway: Gateway) -> None:
    with pytest.raises(ModelNotFound, match="no scripted model named 'nobody'"):
        gateway.complete(request("scripted/nobody"))


async def test_tokens_and_cost_are_accounted_only_for_fresh_calls(gateway: Gateway, scripted: Any) -> None:
    model, script = scripted
    script.default = "two words"
    await gateway.acomplete(request(model, text="one two three"))
    await gateway.acomplete(request(model, text="one two three"))
    assert gateway.stats.usage == Usage(prompt_tokens=3, completion_tokens=2)


def _litellm_exceptions() -> list[type[BaseException]]:
    from litellm import exceptions as le

    return [obj for _, obj in inspect.getmembers(le, inspect.isclass)
            if issubclass(obj, BaseException) and obj.__module__.startswith("litellm")]


def _instance(cls: type[BaseException]) -> BaseException:
    exc = cls.__new__(cls)
    Exception.__init__(exc, "boom")
    exc.message = "boom"  # type: ignore[attr-defined]
    return exc


def test_every_litellm_exception_maps_into_the_agentforge_tree() -> None:
    classes = _litellm_exceptions()
    assert len(classes) > 15
    for cls in classes:
        mapped = map_litellm_error(_instance(cls), "openai/x")
        assert isinstance(mapped, AgentforgeError), cls
        assert "openai/x" in str(mapped)


@pytest.mark.parametrize(("name", "expected"), [
    ("RateLimitError", RateLimit), ("ContextWindowExceededError", ContextWindow),
    ("AuthenticationError", Auth), ("APIConnectionError", Transport), ("Timeout", Transport),
    ("ServiceUnavailableError", Transport), ("NotFoundError", ModelNotFound), ("BadRequestError", LLMError),
])
def test_litellm_errors_map_to_the_matching_kind(name: str, expected: type[Exception]) -> None:
    from litellm import exceptions as le

    mapped = map_litellm_error(_instance(getattr(le, name)), "openai/x")
    assert type(mapped) is expected


def test_our_own_errors_raised_inside_a_provider_are_unwrapped() -> None:
    inner = ContextWindow("too long")
    outer = RuntimeError("wrapped")
    outer.__cause__ = inner
    assert map_litellm_error(outer, "local/x") is inner


async def test_real_litellm_http_path_reports_an_unreachable_backend(tmp_path: Path) -> None:
    gw = Gateway(Settings(home=tmp_path, max_retries=0))
    with pytest.raises(Transport, match="cannot reach"):
        await gw.acomplete(request("openai/gpt-4o-mini", api_base="http://127.0.0.1:9/v1", api_key="sk-test",
                                   timeout=5))
