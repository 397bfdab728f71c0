"""One RetryPolicy value: the LLM gateway and the remote environment client both follow it."""

from __future__ import annotations

import random
import socket
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from agentforge.config import Settings
from agentforge.envs.remote.client import RemoteEnv
from agentforge.envs.remote.profiles import get_profile
from agentforge.errors import EnvError, EnvServerError, RateLimit, Transport
from agentforge.llm.base import LLMRequest, Message
from agentforge.llm.gateway import Gateway
from agentforge.retry import ENV_RETRY_CODES, RetryPolicy

PLAIN = get_profile("textcraft").with_(name="plain", action_adapter="plain", error_style="json_4xx")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_policy_is_a_frozen_validated_value() -> None:
    policy = RetryPolicy(max_attempts=3, initial_delay=0.5, backoff=2, max_delay=1.5, jitter=0)
    assert policy.retries == 2
    assert [policy.delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 1.5]
    with pytest.raises(ValidationError):
        policy.max_attempts = 5  # type: ignore[misc]
    with pytest.raises(ValidationError):
        RetryPolicy(max_attempts=0)
    jittered = RetryPolicy(initial_delay=1.0, jitter=0.2)
    rng = random.Random(0)
    assert all(0.8 <= jittered.delay(1, rng) <= 1.2 for _ in range(100))
    assert RetryPolicy().should_retry(Transport("down"), 1) and not RetryPolicy().should_retry(Transport("x"), 4)


async def test_the_gateway_retries_only_the_codes_its_policy_names(tmp_path: Path, scripted: Any) -> None:
    model, script = scripted
    policy = RetryPolicy(max_attempts=3, initial_delay=0.001, jitter=0, retry_on=frozenset({"rate_limit"}))
    gateway = Gateway(Settings(home=tmp_path), retry=policy)
    request = LLMRequest(model=model, messages=(Message(role="user", content="hi"),))
    script.default = Transport("down")
    with pytest.raises(Transport):
        await gateway.acomplete(request)
    assert len(script.calls) == 1  # transport is not in this policy's codes
    script.default = RateLimit("slow down")
    with pytest.raises(RateLimit):
        await gateway.acomplete(request)
    assert len(script.calls) == 1 + 3


def test_the_gateway_policy_comes_from_settings(tmp_path: Path) -> None:
    assert Gateway(Settings(home=tmp_path, max_retries=0)).retry.max_attempts == 1
    assert Gateway(Settings(home=tmp_path, max_retries=5)).retry.max_attempts == 6


async def test_the_env_client_follows_its_policy() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    twice = RetryPolicy(max_attempts=2, initial_delay=0.01, jitter=0, retry_on=ENV_RETRY_CODES)
    env = RemoteEnv(url, PLAIN, tasks=[0], timeout=1, retry=twice)
    with pytest.raises(EnvServerError, match=r"cannot connect .*\(after 1 retry\)"):
        await env.session().areset("0")
    await env.aclose()
    never = RetryPolicy(max_attempts=4, initial_delay=0.01, retry_on=frozenset())  # no code is worth another try
    env = RemoteEnv(url, PLAIN, tasks=[0], timeout=1, retry=never)
    with pytest.raises(EnvServerError, match="cannot connect") as caught:
        await env.session().areset("0")
    assert "retr" not in str(caught.value)
    await env.aclose()


def test_the_env_clients_short_form_is_a_policy() -> None:
    env = RemoteEnv("http://127.0.0.1:9", PLAIN, tasks=[0], retries=2, backoff=0.05)
    assert env.retry == RetryPolicy(max_attempts=3, initial_delay=0.05, backoff=2.0, max_delay=2.0, jitter=0.0,
                                    retry_on=ENV_RETRY_CODES)
    env.close()


def test_an_environment_file_sets_the_remote_clients_policy(tmp_path: Path) -> None:
    from agentforge.envs.registry import load_env

    path = tmp_path / "remote.yaml"
    path.write_text("version: 1\nkind: env\nname: far\nsource: {type: remote, url: 'http://127.0.0.1:9', "
                    "profile: textcraft, task_ids: [0, 1], params: {retry: {max_attempts: 5, initial_delay: 0.2}}}\n")
    env = load_env(path)
    assert isinstance(env, RemoteEnv)
    assert env.retry.max_attempts == 5 and env.retry.initial_delay == 0.2
    env.close()
    path.write_text(path.read_text().replace("max_attempts: 5", "max_attempts: 0"))
    with pytest.raises(EnvError, match="invalid retry policy") as caught:
        load_env(path)
    assert "max_attempts" in str(caught.value)
