"""``n`` answers to one prompt on the embedded model, decoded together.

``complete_parallel`` evaluates the prompt once in sequence 0 (reusing whatever prefix the context already
holds), copies that sequence to sequences 1..w-1 and then decodes the w answers in one ``llama_decode`` per
step, each with its own sampler chain (and grammar). On a CPU a step over a handful of tokens costs about
what a step over one token costs, so ``n=5`` costs close to ``n=1``.

Every answer is produced as ``Llama.create_chat_completion`` would produce it, one at a time: the same
prompt tokens (the GGUF's chat template through llama-cpp-python's Jinja2 formatter), the same sampler chain
and defaults, the same seeds (seed, seed+1, ... or llama-cpp-python's chain of derived seeds), the same stop
strings, end-of-generation tokens, ``max_tokens`` clamp and text cutting. The numbers are not bit for bit the
same: llama.cpp's CPU kernels round a step over several tokens differently from a step over one (logits move
by up to ~0.3 on this model), so a sampled answer follows the same distribution but not the same draw as the
sequential path, and a greedy answer decoded in a batch could part from it at a near-tie. At temperature 0
the n answers are therefore decoded once, alone, and equal the sequential path's (from the same context state:
like llama-cpp-python's own prefix reuse, what the context already holds changes how the prompt is batched).

How many sequences decode together (the width) is bounded by the context's ``n_seq_max`` and by what fits
in ``n_ctx`` (the prompt's cells are shared; each answer needs ``max_tokens - 1`` more). A larger ``n`` runs
in several groups of that width from the same prompt evaluation; width 1 is plain sequential decoding. The
context must be created with ``kv_unified=True``: without it llama.cpp splits ``n_ctx`` between sequences,
so only width 1 is used.

Afterwards the context holds sequence 0 = the prompt and nothing else, with ``llama.n_tokens`` and
``llama.input_ids`` matching and ``llama._requires_eval`` set, so the next call with the same prefix reuses it.

Not thread-safe: the caller holds the model's lock. Importing this module imports neither llama_cpp nor
``agentforge.llm.local``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from agentforge.logs import get_logger

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp._internals import LlamaSampler
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    from llama_cpp.llama_grammar import LlamaGrammar

    from agentforge.llm.local import GenerationParams, LocalCompletion

__all__ = ["ChatPrompt", "batch_width", "chat_prompt", "complete_parallel"]

log = get_logger(__name__)

# create_chat_completion's defaults, used when the caller leaves a parameter unset.
_DEFAULT_TEMPERATURE = 0.2
_DEFAULT_TOP_P = 0.95
_DEFAULT_TOP_K = 40
_DEFAULT_MIN_P = 0.05
_TEMPLATE_PREFIX = "chat_template."


@dataclass(frozen=True)
class ChatPrompt:
    """A chat formatted for the model: its tokens and the stop strings ``create_chat_completion`` would use."""

    tokens: tuple[int, ...]
    stops: tuple[str, ...]


@dataclass(frozen=True)
class _Sampling:
    temperature: float
    top_p: float
    top_k: int
    min_p: float
    repeat_penalty: float
    presence_penalty: float
    frequency_penalty: float

    @classmethod
    def of(cls, params: GenerationParams) -> _Sampling:
        extra = dict(params.extra)
        return cls(
            temperature=_DEFAULT_TEMPERATURE if params.temperature is None else params.temperature,
            top_p=_DEFAULT_TOP_P if params.top_p is None else params.top_p,
            top_k=int(extra.get("top_k", _DEFAULT_TOP_K)),
            min_p=extra.get("min_p", _DEFAULT_MIN_P),
            repeat_penalty=extra.get("repeat_penalty", 1.0),
            presence_penalty=extra.get("presence_penalty", 0.0),
            frequency_penalty=extra.get("frequency_penalty", 0.0),
        )

    @property
    def penalised(self) -> bool:
        # llama.cpp's penalties sampler returns early on these neutral values; skip it outright.
        return (self.repeat_penalty, self.presence_penalty, self.frequency_penalty) != (1.0, 0.0, 0.0)


@dataclass
class _Answer:
    """One answer being generated: the bookkeeping of ``Llama._create_completion`` for a single choice."""

    sampler: LlamaSampler
    tokens: list[int] = field(default_factory=list)
    text: bytes = b""
    finish: str | None = None
    multibyte: int = 0

    def take(self, llama: Llama, token: int, stops: Sequence[bytes], max_tokens: int) -> None:
        import llama_cpp

        if llama_cpp.llama_vocab_is_eog(llama._model.vocab, token):
            self.text = llama.detokenize(self.tokens)
            self.finish = "stop"
            return
        self.tokens.append(token)
        text = llama.detokenize(self.tokens)
        # Hold back a token that ends inside a multi-byte UTF-8 character, as llama-cpp-python does (it also
        # skips the length check for it).
        for k, char in enumerate(text[-3:]):
            k = 3 - k
            for num, pattern in ((2, 192), (3, 224), (4, 240)):
                if num > k and pattern & char == pattern:
                    self.multibyte = num - k
        if self.multibyte > 0:
            self.multibyte -= 1
            return
        hits = [s for s in stops if s in text]
        if hits:
            self.text = text[: text.index(hits[0])]
            self.finish = "stop"
        elif len(self.tokens) >= max_tokens:
            self.text = text
            self.finish = "length"


def chat_prompt(llama: Llama, chat: list[dict[str, str]], stop: Sequence[str] = ()) -> ChatPrompt | None:
    """The prompt ``create_chat_completion`` would evaluate for ``chat``; None unless ``llama`` formats chats
    with a chat template from its GGUF (another chat format or a custom handler)."""
    formatter = _template_formatter(llama)
    if formatter is None:
        return None
    result = formatter(messages=chat)
    tokens = llama.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)
    extra = [] if result.stop is None else [result.stop] if isinstance(result.stop, str) else list(result.stop)
    return ChatPrompt(tokens=tuple(tokens), stops=(*stop, *extra))


def batch_width(llama: Llama, n: int, prompt_len: int, max_tokens: int) -> int:
    """How many of ``n`` answers can decode together in this context (1 = one after another)."""
    params = llama.context_params
    if not params.kv_unified:
        return 1
    per_answer = max(1, max_tokens - 1)  # the last sampled token is never decoded
    fits = (llama.n_ctx() - prompt_len) // per_answer
    return max(1, min(n, int(params.n_seq_max), fits))


def complete_parallel(llama: Llama, chat: list[dict[str, str]], params: GenerationParams) -> LocalCompletion | None:
    """``params.n`` answers to ``chat`` (seeds seed, seed+1, ...) from one prompt evaluation, decoded together;
    None when ``llama`` formats chats otherwise than with its GGUF's template (see ``chat_prompt``).

    Raises ValueError("... exceed context window ...") when the prompt does not fit, RuntimeError when
    llama.cpp fails, as ``create_chat_completion`` does.
    """
    from agentforge.llm.local import LocalCompletion

    started = time.perf_counter()
    prompt = chat_prompt(llama, chat, params.stop)
    if prompt is None:
        return None
    n_ctx = llama.n_ctx()
    prompt_len = len(prompt.tokens)
    if prompt_len >= n_ctx:
        raise ValueError(f"Requested tokens ({prompt_len}) exceed context window of {n_ctx}")
    max_tokens = params.max_tokens if params.max_tokens is not None and params.max_tokens > 0 else n_ctx
    max_tokens = min(max_tokens, n_ctx - prompt_len)
    sampling = _Sampling.of(params)
    seeds = _seeds(llama, params.n, params.seed)
    # Greedy decoding is deterministic: the n answers are one answer n times, so decode it once. This also
    # keeps temperature 0 exact: llama.cpp's CPU kernels round differently for a batch of several tokens
    # than for one, so a batched greedy answer can part from the one-at-a-time answer at a near-tie.
    distinct = 1 if sampling.temperature == 0.0 else params.n
    width = batch_width(llama, distinct, prompt_len, max_tokens)
    if width < distinct:
        log.debug("local.batched_narrowed", n=distinct, width=width, n_seq_max=llama.context_params.n_seq_max,
                  kv_unified=llama.context_params.kv_unified, prompt_tokens=prompt_len, max_tokens=max_tokens,
                  detail="sequential" if width == 1 else "in groups")
    grammar = _grammar(params)
    stops = [s.encode("utf-8") for s in prompt.stops]
    answers = [_Answer(_sampler(llama, sampling, grammar, seed)) for seed in seeds[:distinct]]
    reused = _decode(llama, list(prompt.tokens), answers, width, stops, max_tokens)
    answers = answers * (params.n // distinct)
    log.debug("local.batched", n=params.n, decoded=distinct, width=width, prompt_tokens=prompt_len,
              reused_tokens=reused, seconds=round(time.perf_counter() - started, 3))
    return LocalCompletion(
        texts=tuple(a.text.decode("utf-8", errors="ignore") for a in answers),
        finish_reasons=tuple(a.finish or "length" for a in answers),
        prompt_tokens=prompt_len,
        completion_tokens=sum(len(a.tokens) for a in answers),
        seconds=time.perf_counter() - started,
        reused_prompt_tokens=reused,
    )


def _decode(llama: Llama, prompt: list[int], answers: list[_Answer], width: int, stops: list[bytes],
            max_tokens: int) -> int:
    """Generate every answer; returns how many prompt tokens were reused from the context."""
    import llama_cpp
    from llama_cpp._internals import LlamaBatch

    memory = llama_cpp.llama_get_memory(llama.ctx)
    ctx = llama._ctx
    prompt_len = len(prompt)
    batch = LlamaBatch(n_tokens=width, embd=0, n_seq_max=1, verbose=False)
    reused: int | None = None
    try:
        for seq in range(1, width):  # whatever an earlier failure left behind
            llama_cpp.llama_memory_seq_rm(memory, seq, -1, -1)
        reused = _eval_prompt(llama, prompt)
        for answer in answers:  # every first token comes from the prompt's logits
            answer.take(llama, answer.sampler.sample(ctx, -1), stops, max_tokens)
        for start in range(0, len(answers), width):
            group = answers[start : start + width]
            for seq in range(1, len(group)):
                llama_cpp.llama_memory_seq_cp(memory, 0, seq, -1, -1)
            running = [(seq, a) for seq, a in enumerate(group) if a.finish is None]
            pos = prompt_len
            while running:
                raw = batch.batch
                raw.n_tokens = len(running)
                for i, (seq, answer) in enumerate(running):
                    raw.token[i] = answer.tokens[-1]
                    raw.pos[i] = pos
                    raw.n_seq_id[i] = 1
                    raw.seq_id[i][0] = seq
                    raw.logits[i] = True
                ctx.decode(batch)
                pos += 1
                for i, (_, answer) in enumerate(running):
                    answer.take(llama, answer.sampler.sample(ctx, i), stops, max_tokens)
                running = [(seq, a) for seq, a in running if a.finish is None]
            _back_to_prompt(llama_cpp, memory, len(group), prompt_len)
    finally:
        batch.close()
        for answer in answers:
            answer.sampler.close()
        if reused is not None:  # else Llama.eval's own bookkeeping stands (it failed part-way)
            _back_to_prompt(llama_cpp, memory, width, prompt_len)
            llama.n_tokens = prompt_len
        llama._requires_eval = True  # the logits are the last decode step's, not the prompt's
    return reused


def _back_to_prompt(llama_cpp: Any, memory: Any, width: int, prompt_len: int) -> None:
    for seq in range(1, width):
        llama_cpp.llama_memory_seq_rm(memory, seq, -1, -1)
    llama_cpp.llama_memory_seq_rm(memory, 0, prompt_len, -1)


def _eval_prompt(llama: Llama, prompt: list[int]) -> int:
    """Evaluate ``prompt`` in sequence 0 after the longest prefix the context holds (as ``Llama.generate``
    does); the last token is always evaluated so its logits are fresh. Returns the reused count."""
    cached = llama.input_ids[: llama.n_tokens].tolist()
    common = 0
    for a, b in zip(cached, prompt, strict=False):
        if a != b:
            break
        common += 1
    keep = min(common, len(prompt) - 1)
    if keep > 0 and llama._ctx.kv_cache_seq_rm(0, keep, -1):
        llama.n_tokens = keep
    else:
        llama.reset()
        keep = 0
    llama._requires_eval = True
    llama.eval(prompt[keep:])
    return keep


def _seeds(llama: Llama, n: int, seed: int | None) -> list[int]:
    """The seed each of ``n`` sequential ``create_chat_completion`` calls would use, leaving ``llama``'s seed
    where they would leave it."""
    seeds = []
    for i in range(n):
        chosen = seed + i if seed is not None else random.Random(llama._seed).randint(0, 2**32)
        llama.set_seed(chosen)
        seeds.append(chosen)
    return seeds


def _sampler(llama: Llama, s: _Sampling, grammar: LlamaGrammar | None, seed: int) -> LlamaSampler:
    """The chain ``Llama._init_sampler`` builds, with one answer's seed."""
    from llama_cpp._internals import LlamaSampler

    sampler = LlamaSampler()
    if s.penalised:
        sampler.add_penalties(n_vocab=llama.n_vocab(), penalty_last_n=llama.last_n_tokens_size,
                              penalty_repeat=s.repeat_penalty, penalty_freq=s.frequency_penalty,
                              penalty_present=s.presence_penalty)
    if grammar is not None:
        sampler.add_grammar(llama._model, grammar)
    if s.temperature < 0.0:
        sampler.add_dist(seed)
    elif s.temperature == 0.0:
        sampler.add_greedy()
    else:
        sampler.add_top_k(s.top_k)
        sampler.add_typical(1.0, 1)
        sampler.add_top_p(s.top_p, 1)
        sampler.add_min_p(s.min_p, 1)
        sampler.add_temp(s.temperature)
        sampler.add_dist(seed)
    return sampler


def _grammar(params: GenerationParams) -> LlamaGrammar | None:
    if not params.json_mode:
        return None
    schema = json.dumps(params.json_schema) if params.json_schema is not None else None
    return _cached_grammar(schema)


@lru_cache(maxsize=64)
def _cached_grammar(schema_json: str | None) -> LlamaGrammar:
    # What create_chat_completion builds for response_format {"type": "json_object"[, "schema": ...]}.
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    if schema_json is not None:
        try:
            return LlamaGrammar.from_json_schema(schema_json, verbose=False)
        except Exception:  # the converter raises bare Exception/KeyError/ValueError; llama-cpp falls back
            pass
    return LlamaGrammar.from_string(JSON_GBNF, verbose=False)


def _template_formatter(llama: Llama) -> Jinja2ChatFormatter | None:
    name = llama.chat_format
    if llama.chat_handler is not None or not name or not name.startswith(_TEMPLATE_PREFIX):
        return None
    key = "tokenizer.chat_template" if name == _TEMPLATE_PREFIX + "default" else "tokenizer." + name
    template = llama.metadata.get(key)
    if template is None:
        return None
    eos_id, bos_id = llama.token_eos(), llama.token_bos()
    eos = llama._model.token_get_text(eos_id) if eos_id != -1 else ""
    bos = llama._model.token_get_text(bos_id) if bos_id != -1 else ""
    return _formatter(template, eos, bos, eos_id)


@lru_cache(maxsize=8)
def _formatter(template: str, eos: str, bos: str, eos_id: int) -> Jinja2ChatFormatter:
    # Built as Llama.__init__ builds the handler for a GGUF template; compiling the template once.
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    return Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos, stop_token_ids=[eos_id])
