"""The real local model through litellm's custom provider ``local``.

Uses the default settings (home ~/.cache/agentforge), so the 491 MB GGUF is assembled once per machine.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from agentforge.config import LOCAL_MODEL, Settings, use_settings
from agentforge.errors import ContextWindow, ModelNotFound
from agentforge.llm.local import find_agentforge_error, get_local_model, load_count, register_local_provider
from agentforge.llm.weights import GGUF_SHA256, GGUF_SIZE, resolve_weights, sha256_file

pytestmark = pytest.mark.local_model

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm is first imported
pytest.importorskip("llama_cpp", reason="the local extra is not installed: pip install 'agentforge[local]'")
litellm = pytest.importorskip("litellm")
jsonschema = pytest.importorskip("jsonschema")

DEFAULTS = Settings()  # ignore any agentforge.yaml / AGENTFORGE_* of the machine running the tests

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "colour": {"type": "string", "enum": ["red", "green", "blue"]},
    },
    "required": ["name", "age", "colour"],
    "additionalProperties": False,
}


@pytest.fixture(autouse=True)
def _default_settings() -> Iterator[None]:
    register_local_provider()
    with use_settings(DEFAULTS):
        yield


async def ask(content: str, **kwargs: Any) -> Any:
    return await litellm.acompletion(model=LOCAL_MODEL, messages=[{"role": "user", "content": content}],
                                     **kwargs)


async def test_short_answer_with_usage_and_zero_cost() -> None:
    response = await ask("What is 2 + 3? Answer with just the number.", temperature=0, max_tokens=8)

    assert "5" in response.choices[0].message.content
    assert response.choices[0].finish_reason in ("stop", "length")
    assert response.model == LOCAL_MODEL
    usage = response.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert litellm.completion_cost(completion_response=response) == 0.0


async def test_json_schema_output_is_constrained() -> None:
    question = "What is the capital of France?"
    schema_format = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}

    free = await ask(question, temperature=0, max_tokens=40)
    constrained = await ask(question, temperature=0, max_tokens=80, response_format=schema_format)

    with pytest.raises(json.JSONDecodeError):  # left alone, the model answers in prose
        json.loads(free.choices[0].message.content)
    data = json.loads(constrained.choices[0].message.content)
    jsonschema.validate(data, PERSON)


async def test_json_object_mode_gives_json() -> None:
    response = await ask("Give the numbers one to three as JSON.", temperature=0, max_tokens=60,
                         response_format={"type": "json_object"})
    json.loads(response.choices[0].message.content)


async def test_n_choices() -> None:
    response = await ask("Name an animal.", temperature=0.9, seed=11, n=2, max_tokens=12)

    assert [c.index for c in response.choices] == [0, 1]
    assert all(c.message.content for c in response.choices)
    assert response.usage.completion_tokens > 0


def test_sync_completion_works() -> None:
    response = litellm.completion(model=LOCAL_MODEL, messages=[{"role": "user", "content": "Say OK."}],
                                  temperature=0, max_tokens=4)
    assert response.choices[0].message.content


async def test_model_is_loaded_once_and_shared() -> None:
    await ask("Say hi.", temperature=0, max_tokens=4)
    loads = load_count()

    await ask("Say bye.", temperature=0, max_tokens=4)

    assert load_count() == loads
    assert get_local_model(DEFAULTS) is get_local_model(DEFAULTS)


async def test_concurrent_calls_share_the_model_safely() -> None:
    questions = [f"What is {a} + {a}? Answer with just the number." for a in (2, 3, 4)]
    responses = await asyncio.gather(*(ask(q, temperature=0, max_tokens=6) for q in questions))
    assert [r.choices[0].message.content.strip() for r in responses] == ["4", "6", "8"]


async def test_event_loop_stays_free_while_generating() -> None:
    await ask("Warm up.", temperature=0, max_tokens=2)  # a first load must not count against the loop
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        await ask("Count from 1 to 30, separated by commas.", temperature=0, max_tokens=40)
    finally:
        task.cancel()
    assert ticks >= 5


async def test_prompt_too_long_is_a_context_window_error() -> None:
    # litellm wraps what a custom handler raises; ours stays on the exception chain.
    with pytest.raises(litellm.exceptions.APIConnectionError) as err:
        await ask("hello " * (DEFAULTS.local.n_ctx + 100), max_tokens=4)
    assert isinstance(find_agentforge_error(err.value), ContextWindow)


async def test_unknown_local_model_is_model_not_found() -> None:
    with pytest.raises(litellm.exceptions.APIConnectionError) as err:
        await litellm.acompletion(model="local/some-other-model", messages=[{"role": "user", "content": "x"}])
    found = find_agentforge_error(err.value)
    assert isinstance(found, ModelNotFound)
    assert LOCAL_MODEL in str(found)


def test_assembled_file_is_the_pinned_model() -> None:
    path = resolve_weights(DEFAULTS.local, DEFAULTS.models_dir)
    assert path.stat().st_size == GGUF_SIZE
    assert sha256_file(path) == GGUF_SHA256


async def test_a_shared_system_prompt_is_reported_as_reused_through_the_gateway() -> None:
    from agentforge.llm.base import LLMRequest, Message
    from agentforge.llm.gateway import Gateway

    system = " ".join(f"Rule {i}: answer questions about topic number {i} briefly and politely." for i in range(25))
    system_tokens = len(get_local_model(DEFAULTS).llama.tokenize(system.encode(), add_bos=False))
    assert system_tokens >= 250
    gateway = Gateway(DEFAULTS)

    def request(question: str) -> LLMRequest:
        return LLMRequest(model=LOCAL_MODEL, messages=(Message(role="system", content=system),
                                                       Message(role="user", content=question)),
                          max_tokens=4, cache=False)

    first = await gateway.acomplete(request("What is the capital of France?"))
    second = await gateway.acomplete(request("How many legs does a spider have?"))
    assert not first.cached and not second.cached
    assert second.usage.prompt_tokens > system_tokens
    assert second.usage.reused_prompt_tokens >= system_tokens - 5
    assert second.usage.reused_prompt_tokens < second.usage.prompt_tokens  # the new question was evaluated
    assert gateway.stats.reused_prompt_tokens >= second.usage.reused_prompt_tokens
