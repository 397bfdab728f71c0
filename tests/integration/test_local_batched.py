"""n answers to one prompt decoded together on the real local model (agentforge.llm.batched).

Two contexts over the same weights: ``parallel`` as the local provider will create it (8 sequences, one
unified KV cache) and ``plain`` with llama-cpp-python's defaults (1 sequence), the reference for what
``create_chat_completion`` answers one call at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from agentforge.config import Settings
from agentforge.llm.local import GenerationParams
from agentforge.llm.weights import resolve_weights

pytestmark = pytest.mark.local_model

llama_cpp = pytest.importorskip("llama_cpp", reason="the local extra is not installed: pip install 'agentforge[local]'")
jsonschema = pytest.importorskip("jsonschema")

from agentforge.llm.batched import batch_width, chat_prompt, complete_parallel  # noqa: E402

DEFAULTS = Settings()
N_SEQ_MAX = 8
NEAR_TIE = 0.5  # logits; batched steps move them by up to ~0.34 on this model (see batched.py)
PROMPTS = (
    "What is 7 times 6? Answer in one sentence.",
    "Name three primary colours.",
    "Write a Python function that reverses a string.",
)
ANSWER = {
    "type": "object",
    "properties": {"value": {"type": "integer"}, "sure": {"type": "boolean"}},
    "required": ["value", "sure"],
    "additionalProperties": False,
}


def _load(*, parallel: bool) -> Any:
    """A Llama as agentforge.llm.local loads it, optionally with the multi-sequence context parameters
    (Llama() takes no argument for them, so its default parameter factories are swapped while it loads)."""
    low_level = llama_cpp.llama_cpp
    model_defaults, context_defaults = low_level.llama_model_default_params, low_level.llama_context_default_params

    def model_params() -> Any:
        params = model_defaults()
        params.use_extra_bufts = False
        return params

    def context_params() -> Any:
        params = context_defaults()
        if parallel:
            params.n_seq_max = N_SEQ_MAX
            params.kv_unified = True
        return params

    local = DEFAULTS.local
    try:
        low_level.llama_model_default_params = model_params
        low_level.llama_context_default_params = context_params
        return llama_cpp.Llama(model_path=str(resolve_weights(local, DEFAULTS.models_dir)), n_ctx=local.n_ctx,
                               n_batch=local.n_batch, n_threads=1, n_threads_batch=1, verbose=False)
    finally:
        low_level.llama_model_default_params = model_defaults
        low_level.llama_context_default_params = context_defaults


@pytest.fixture(scope="module")
def parallel() -> Iterator[Any]:
    llama = _load(parallel=True)
    yield llama
    llama.close()


@pytest.fixture(scope="module")
def plain() -> Iterator[Any]:
    llama = _load(parallel=False)
    yield llama
    llama.close()


def user(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


def greedy(llama: Any, chat: list[dict[str, str]], max_tokens: int) -> Any:
    return llama.create_chat_completion(messages=chat, temperature=0, max_tokens=max_tokens)


def greedy_trace(llama: Any, chat: list[dict[str, str]], max_tokens: int) -> tuple[list[int], list[float]]:
    """The greedy tokens for ``chat`` decoded one at a time from a fresh context, each with its step's margin
    between the best and the second-best logit."""
    llama.reset()
    llama.eval(list(chat_prompt(llama, chat).tokens))
    tokens: list[int] = []
    margins: list[float] = []
    while len(tokens) < max_tokens:
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llama.ctx, -1), shape=(llama.n_vocab(),))
        second, best = np.argsort(logits)[-2:]
        if llama_cpp.llama_vocab_is_eog(llama._model.vocab, int(best)):
            break
        tokens.append(int(best))
        margins.append(float(logits[best] - logits[second]))
        llama.eval([int(best)])
    return tokens, margins


def assert_greedy_up_to_a_near_tie(llama: Any, text: str, tokens: list[int], margins: list[float]) -> None:
    """``text`` is the greedy answer, or parts from it only where its best two tokens were nearly tied."""
    agreed = 0
    while agreed < len(tokens) and text.encode().startswith(llama.detokenize(tokens[: agreed + 1])):
        agreed += 1
    if agreed < len(tokens) and text.encode() != llama.detokenize(tokens):
        assert margins[agreed] < NEAR_TIE, (text, llama.detokenize(tokens), agreed, margins[agreed])


def test_greedy_answers_equal_the_sequential_greedy_answer(parallel: Any, plain: Any) -> None:
    for content in PROMPTS:
        chat = user(content)
        plain.create_chat_completion(messages=chat, max_tokens=1)  # evaluates exactly the prompt
        assert list(chat_prompt(parallel, chat).tokens) == plain._input_ids.tolist()
        parallel.reset()
        sequential = greedy(parallel, chat, 24)
        parallel.reset()

        result = complete_parallel(parallel, chat, GenerationParams(temperature=0, max_tokens=24, n=3))
        # top_k=1 samples greedily through the batched path: 3 sequences in each decode step
        batched = complete_parallel(parallel, chat, GenerationParams(temperature=1.0, max_tokens=24, n=3,
                                                                     extra=(("top_k", 1.0),)))

        assert result.texts == (sequential["choices"][0]["message"]["content"],) * 3
        assert result.prompt_tokens == sequential["usage"]["prompt_tokens"]
        assert result.completion_tokens == 3 * sequential["usage"]["completion_tokens"]
        tokens, margins = greedy_trace(plain, chat, 24)
        assert plain.detokenize(tokens).decode() == sequential["choices"][0]["message"]["content"]
        for text in batched.texts:
            assert_greedy_up_to_a_near_tie(plain, text, tokens, margins)


def test_every_answer_with_a_json_schema_validates(parallel: Any) -> None:
    chat = user("How many legs does a spider have? Reply as JSON.")
    params = GenerationParams(temperature=0.9, max_tokens=24, n=4, seed=3, json_schema=ANSWER, json_mode=True)

    result = complete_parallel(parallel, chat, params)

    assert result.finish_reasons == ("stop",) * 4
    for text in result.texts:
        jsonschema.validate(json.loads(text), ANSWER)


def test_same_seeds_reproduce_the_samples_and_different_seeds_vary(parallel: Any) -> None:
    chat = user("Invent a name for a new programming language and say why.")
    params = GenerationParams(temperature=1.0, max_tokens=16, n=3, seed=11)

    parallel.reset()  # what the context holds changes how the prompt is batched: start alike
    first = complete_parallel(parallel, chat, params)
    parallel.reset()
    again = complete_parallel(parallel, chat, params)

    assert again.texts == first.texts
    assert len(set(first.texts)) == 3  # seeds 11, 12, 13


def test_after_a_batched_call_the_context_holds_the_prompt_for_the_next_call(parallel: Any, plain: Any) -> None:
    chat = user(PROMPTS[2])
    tokens = list(chat_prompt(parallel, chat).tokens)
    complete_parallel(parallel, chat, GenerationParams(temperature=0.7, max_tokens=16, n=5, seed=1))

    memory = llama_cpp.llama_get_memory(parallel.ctx)
    assert parallel._input_ids.tolist() == tokens
    assert llama_cpp.llama_memory_seq_pos_max(memory, 0) == len(tokens) - 1
    assert [llama_cpp.llama_memory_seq_pos_max(memory, s) for s in range(1, N_SEQ_MAX)] == [-1] * (N_SEQ_MAX - 1)

    llama_cpp.llama_perf_context_reset(parallel.ctx)
    answer = greedy(parallel, chat, 24)["choices"][0]["message"]["content"]
    perf = llama_cpp.llama_perf_context(parallel.ctx)

    assert perf.n_p_eval == 1  # only the last prompt token is decoded again (a fresh context decodes them all)
    assert_greedy_up_to_a_near_tie(plain, answer, *greedy_trace(plain, chat, 24))


def test_more_answers_than_the_context_decodes_at_once_run_in_groups(parallel: Any, plain: Any) -> None:
    chat = user(PROMPTS[0])
    assert batch_width(parallel, 10, 40, 8) == N_SEQ_MAX
    assert batch_width(parallel, 5, parallel.n_ctx() - 100, 49) == 2  # (100 free cells) // 48 per answer
    assert batch_width(plain, 5, 40, 8) == 1  # one sequence: one answer after another
    params = GenerationParams(temperature=1.0, max_tokens=8, n=N_SEQ_MAX + 2, extra=(("top_k", 1.0),))

    grouped = complete_parallel(parallel, chat, params)  # 8 sequences together, then 2
    one_by_one = complete_parallel(plain, chat, params)

    tokens, margins = greedy_trace(plain, chat, 8)
    assert len(grouped.texts) == len(one_by_one.texts) == N_SEQ_MAX + 2
    for text in grouped.texts + one_by_one.texts:
        assert_greedy_up_to_a_near_tie(plain, text, tokens, margins)
    assert llama_cpp.llama_memory_seq_pos_max(llama_cpp.llama_get_memory(parallel.ctx), N_SEQ_MAX - 1) == -1
