"""Saved prompt prefixes on the real local model: the same greedy answers as reading every prompt afresh,
a clean fall-back when a prefix was evicted or cannot be restored, and correct answers when calls of two
prompt families interleave under concurrency."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from agentforge.config import LocalModelSettings, Settings
from agentforge.llm.base import LLMRequest, Message
from agentforge.llm.gateway import Gateway
from agentforge.llm.local import GenerationParams, LocalModel, get_local_model, restore_state
from agentforge.llm.prefix_cache import PrefixState

pytestmark = pytest.mark.local_model

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
pytest.importorskip("llama_cpp", reason="the local extra is not installed: pip install 'agentforge[local]'")

FAMILIES = {
    "shop": "You answer questions about a small shop. " + " ".join(
        f"Item {i} costs {3 * i + 2} dollars." for i in range(12)) + " Answer with the number only.",
    "zoo": "You answer questions about a zoo. " + " ".join(
        f"Enclosure {i} holds {i + 1} animals." for i in range(12)) + " Answer with the number only.",
    "rules": "You are a referee. " + " ".join(
        f"Rule {i}: a player may not do move {i} twice." for i in range(12)) + " Answer yes or no.",
}
QUESTIONS = {
    "shop": [f"How much does item {i} cost?" for i in range(10)],
    "zoo": [f"How many animals are in enclosure {i}?" for i in range(10)],
    "rules": [f"May a player do move {i} twice?" for i in range(10)],
}
# Interleaved, so consecutive calls switch family: every call after the first of its family restores a prefix.
PROMPTS = [(family, QUESTIONS[family][i]) for i in range(10) for family in FAMILIES]
GREEDY = GenerationParams(temperature=0.0, max_tokens=6)


def chat(family: str, question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": FAMILIES[family]}, {"role": "user", "content": question}]


def settings(home: Path, **local: int) -> Settings:
    return Settings(home=home, local=LocalModelSettings(**local))


@pytest.fixture(scope="module")
def fresh_answers(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], str]:
    """Every prompt read from scratch: no saved prefixes, and the context emptied before each call."""
    model = get_local_model(settings(tmp_path_factory.mktemp("off"), prefix_cache_mb=0))
    assert model.prefixes is None
    answers = {}
    for family, question in PROMPTS:
        model.llama.reset()
        result = model.complete(chat(family, question), GREEDY)
        assert result.reused_prompt_tokens == 0
        answers[(family, question)] = result.texts[0]
    return answers


def test_saved_prefixes_give_the_same_greedy_answers_as_reading_each_prompt_afresh(
        fresh_answers: dict[tuple[str, str], str], tmp_path: Path) -> None:
    model = get_local_model(settings(tmp_path / "on"))
    assert model.prefixes is not None
    read = reused = 0
    for family, question in PROMPTS:
        result = model.complete(chat(family, question), GREEDY)
        assert result.texts[0] == fresh_answers[(family, question)], (family, question)
        read += result.prompt_tokens
        reused += result.reused_prompt_tokens
    assert model.prefixes.stats.memory_hits >= len(PROMPTS) - 2 * len(FAMILIES)
    assert reused > 0.7 * read  # the system prompts dominate and were read once per family


def test_an_evicted_prefix_falls_back_to_reading_the_whole_prompt(
        fresh_answers: dict[tuple[str, str], str], tmp_path: Path) -> None:
    # A budget that holds about one family's state: switching family always finds its prefix evicted.
    model = get_local_model(settings(tmp_path / "small", prefix_cache_mb=4, prefix_disk_mb=0))
    assert model.prefixes is not None
    for family, question in PROMPTS[:6]:
        result = model.complete(chat(family, question), GREEDY)
        assert result.texts[0] == fresh_answers[(family, question)]
        assert model.prefixes.stats.bytes <= 4 << 20
    assert model.prefixes.stats.evicted >= 2


def test_a_state_that_cannot_be_restored_leaves_a_clean_context(
        fresh_answers: dict[tuple[str, str], str], tmp_path: Path) -> None:
    model: LocalModel = get_local_model(settings(tmp_path / "bad"))
    family, question = PROMPTS[0]
    model.complete(chat(family, question), GREEDY)
    tokens = model.llama._input_ids.copy()
    with model.lock:
        assert restore_state(model.llama, PrefixState(tokens=tokens, kv=b"not a llama.cpp state")) is False
    assert model.llama.n_tokens == 0
    other_family, other_question = PROMPTS[1]
    assert model.complete(chat(other_family, other_question), GREEDY).texts[0] == fresh_answers[PROMPTS[1]]


def test_interleaved_calls_of_two_workflows_stay_correct_under_concurrency(
        fresh_answers: dict[tuple[str, str], str], tmp_path: Path) -> None:
    gateway = Gateway(Settings(home=tmp_path / "gw", cache_enabled=False))
    chosen = [p for p in PROMPTS if p[0] in ("shop", "zoo")][:8]

    async def ask(family: str, question: str) -> str:
        request = LLMRequest(model="local/qwen2.5-coder-0.5b-instruct", temperature=0.0, max_tokens=6,
                             messages=tuple(Message(role=m["role"], content=m["content"])  # type: ignore[arg-type]
                                            for m in chat(family, question)))
        return (await gateway.acomplete(request)).text

    async def both() -> list[str]:
        return await asyncio.gather(*(ask(f, q) for f, q in chosen))

    answers = asyncio.run(both())
    assert answers == [fresh_answers[p] for p in chosen]
    assert gateway.stats.reordered > 0  # queued calls were regrouped by family, and still answered their callers


def test_n_answers_decoded_together_start_from_a_saved_prefix(tmp_path: Path) -> None:
    model = get_local_model(settings(tmp_path / "n"))
    assert model.prefixes is not None
    model.complete(chat("shop", QUESTIONS["shop"][0]), GREEDY)
    model.complete(chat("zoo", QUESTIONS["zoo"][0]), GREEDY)  # the context now holds another family
    hits = model.prefixes.stats.memory_hits
    result = model.complete(chat("shop", QUESTIONS["shop"][1]),
                            GenerationParams(temperature=0.8, max_tokens=6, n=3, seed=7))
    assert len(result.texts) == 3
    assert model.prefixes.stats.memory_hits == hits + 1
    assert result.reused_prompt_tokens > 0.7 * result.prompt_tokens
    # and the state it leaves (the prompt) serves the next call of the family
    after = model.complete(chat("shop", QUESTIONS["shop"][2]), GREEDY)
    assert after.reused_prompt_tokens > 0.7 * after.prompt_tokens
