"""The embedded default model, run in-process by llama-cpp-python and served to litellm as provider ``local``.

``register_local_provider()`` makes ``litellm.acompletion(model="local/qwen2.5-coder-0.5b-instruct", ...)``
work; the gateway calls it lazily before its first ``local/...`` call. Importing this module imports neither
litellm nor llama_cpp.

One ``Llama`` per (file, its weights' sha256, threads, context, batch) is loaded per process and shared.
llama.cpp is not thread-safe, so each model has a lock, and async callers generate in a worker thread so
the event loop stays free.

Threads (measured on 2 cores by benchmarks/bench_local_model.py, results in benchmarks/README.md):
llama.cpp's OpenMP threads spin while waiting for each other, so with libgomp's default wait policy two
threads collapse when another process is busy on the second core (generation 24.5 -> 7.8 tokens/s).
Unless the user chose a policy, ``OMP_WAIT_POLICY=PASSIVE`` is set before llama_cpp is first imported
(libgomp reads it once, at load): with it two threads do not collapse under load (11.3 tokens/s against
one thread's 13.1) and are 1.5x faster when the machine is free. Through the engine, with saved prefixes,
an evaluation of a 2-node workflow ran 1.60x faster on two PASSIVE threads than on one, and 1.09x faster
beside a busy loop; two worker processes of one thread each ran 1.67x (1.10x busy). So ``local.n_threads``
defaults to the usable cores, at most 2 (the configuration measured), and the process executor gives each
worker its share. Prompt processing uses the same count (llama-cpp-python would take every core).

Errors raised here are agentforge errors. litellm wraps whatever a custom handler raises (usually into
``litellm.APIConnectionError``) and keeps ours only on the exception chain: ``find_agentforge_error``
digs it out.
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import json
import os
import sys
import threading
import time
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from agentforge.config import LOCAL_MODEL, LocalModelSettings, Settings, get_settings
from agentforge.errors import AgentforgeError, ContextWindow, LLMError, ModelNotFound
from agentforge.llm.prefix_cache import PrefixCache, PrefixState, common_prefix
from agentforge.llm.weights import INSTALL_HINT, resolve_weights, weights_identity
from agentforge.logs import get_logger

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = [
    "MODEL_NAME",
    "PROVIDER",
    "GenerationParams",
    "LocalCompletion",
    "LocalModel",
    "find_agentforge_error",
    "get_local_model",
    "load_count",
    "register_local_provider",
    "unload_local_models",
]

log = get_logger(__name__)

PROVIDER = "local"
MODEL_NAME = LOCAL_MODEL.split("/", 1)[1]
_WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
_WAIT_POLICY_DEFAULT = "PASSIVE"

# Parameters llama.cpp can honour beyond the OpenAI core; anything else that would change the answer
# is refused rather than silently ignored.
_PASSTHROUGH = ("top_k", "min_p", "repeat_penalty", "presence_penalty", "frequency_penalty")
_UNSUPPORTED = ("tools", "tool_choice", "functions", "function_call", "logprobs", "top_logprobs",
                "logit_bias")


@dataclass(frozen=True)
class GenerationParams:
    """Sampling for one call. ``None`` leaves llama.cpp's default (temperature 0.2, top_p 0.95)."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    n: int = 1
    seed: int | None = None
    stop: tuple[str, ...] = ()
    json_schema: dict[str, Any] | None = None
    json_mode: bool = False
    extra: tuple[tuple[str, float], ...] = ()

    @classmethod
    def from_optional_params(cls, params: Mapping[str, Any]) -> GenerationParams:
        """Read what litellm passes a custom provider as ``optional_params``."""
        refused = sorted(k for k in _UNSUPPORTED if params.get(k) not in (None, False, [], {}))
        if refused:
            raise LLMError(f"the local model does not support: {', '.join(refused)}", model=LOCAL_MODEL)
        stop = params.get("stop")
        stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
        max_tokens = params.get("max_tokens", params.get("max_completion_tokens"))
        n = int(params["n"]) if params.get("n") is not None else 1
        if n < 1:
            raise LLMError(f"n must be at least 1, got {n}", model=LOCAL_MODEL)
        schema, json_mode = _read_response_format(params.get("response_format"))
        return cls(
            temperature=_opt_float(params.get("temperature")),
            top_p=_opt_float(params.get("top_p")),
            max_tokens=int(max_tokens) if max_tokens is not None else None,
            n=n,
            seed=int(params["seed"]) if params.get("seed") is not None else None,
            stop=stops,
            json_schema=schema,
            json_mode=json_mode or schema is not None,
            extra=tuple((k, float(params[k])) for k in _PASSTHROUGH if params.get(k) is not None),
        )


    def chat_kwargs(self) -> dict[str, Any]:
        """What ``Llama.create_chat_completion`` takes for these parameters (all but ``n`` and ``seed``)."""
        kwargs: dict[str, Any] = dict(self.extra)
        if "top_k" in kwargs:
            kwargs["top_k"] = int(kwargs["top_k"])  # llama.cpp's sampler takes an int (a float fails in ctypes)
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        if self.top_p is not None:
            kwargs["top_p"] = self.top_p
        if self.max_tokens is not None:
            kwargs["max_tokens"] = self.max_tokens
        if self.stop:
            kwargs["stop"] = list(self.stop)
        if self.json_mode:
            kwargs["response_format"] = {"type": "json_object"}
            if self.json_schema is not None:
                kwargs["response_format"]["schema"] = self.json_schema
        return kwargs


@dataclass(frozen=True)
class LocalCompletion:
    texts: tuple[str, ...]
    finish_reasons: tuple[str, ...]
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    reused_prompt_tokens: int = 0  # of prompt_tokens, those read from a live or saved prefix, not evaluated


def _opt_float(value: Any) -> float | None:
    return float(value) if value is not None else None


def _read_response_format(fmt: Any) -> tuple[dict[str, Any] | None, bool]:
    """(schema, json_mode) from an OpenAI ``response_format`` (dict or pydantic model class)."""
    if fmt is None:
        return None, False
    if isinstance(fmt, type) and hasattr(fmt, "model_json_schema"):
        return fmt.model_json_schema(), True
    if not isinstance(fmt, Mapping):
        raise LLMError(f"unsupported response_format {fmt!r}", model=LOCAL_MODEL)
    kind = fmt.get("type")
    if kind == "text":
        return None, False
    if kind == "json_object":
        return fmt.get("schema"), True
    if kind == "json_schema":
        spec = fmt.get("json_schema") or {}
        schema = spec.get("schema", fmt.get("schema"))
        return (dict(schema) if schema is not None else None), True
    raise LLMError(f"unsupported response_format type {kind!r}", model=LOCAL_MODEL)


@lru_cache(maxsize=256)
def _check_schema_grammar(schema_json: str) -> None:
    # llama-cpp-python silently falls back to "any JSON" when a schema has no grammar; say so once.
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        json_schema_to_gbnf(schema_json)
    except Exception as exc:  # the converter raises bare Exception/KeyError/ValueError alike
        log.warning("local.schema_not_constrained", error=str(exc),
                    detail="output is constrained to JSON, not to the schema; the caller must validate")


def _text_content(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = []
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            else:
                raise LLMError("the local model accepts text content only", model=LOCAL_MODEL)
        return "".join(parts)
    return str(content)


def _chat_messages(messages: Sequence[Any]) -> list[dict[str, str]]:
    out = []
    for message in messages:
        m = message if isinstance(message, Mapping) else message.model_dump()
        out.append({"role": str(m["role"]), "content": _text_content(m.get("content"))})
    return out


def _choose_wait_policy(environ: MutableMapping[str, str], llama_imported: bool) -> None:
    # libgomp reads the variable once, when llama_cpp's libraries load; later changes do nothing.
    if not llama_imported and _WAIT_POLICY_ENV not in environ:
        environ[_WAIT_POLICY_ENV] = _WAIT_POLICY_DEFAULT


def _import_llama_cpp() -> ModuleType:
    _choose_wait_policy(os.environ, "llama_cpp" in sys.modules)
    try:
        import llama_cpp
    except ImportError as exc:
        raise ModelNotFound(
            f"the local model needs llama-cpp-python, which is not installed ({exc}). "
            f"Install it with: {INSTALL_HINT}",
            model=LOCAL_MODEL,
        ) from exc
    return llama_cpp


@dataclass
class LocalModel:
    """One loaded GGUF, shared by every caller in the process."""

    llama: Llama
    path: Path
    settings: LocalModelSettings
    load_seconds: float
    prefixes: PrefixCache | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Counted by the prefix lookup llama-cpp-python makes before each generation (see _PrefixLookup).
    _read: int = field(default=0, repr=False)
    _reused: int = field(default=0, repr=False)

    def note_prompt(self, tokens: int, reused: int) -> None:
        self._read += tokens
        self._reused += reused

    def complete(self, messages: Sequence[Any], params: GenerationParams) -> LocalCompletion:
        """Generate ``params.n`` answers (seeds seed, seed+1, ...). Blocks; holds the model lock."""
        chat = _chat_messages(messages)
        if params.json_mode and params.json_schema is not None:
            _check_schema_grammar(json.dumps(params.json_schema, sort_keys=True))
        with self.lock:
            together = self._complete_together(chat, params) if params.n > 1 else None
            return together or self._complete_in_turn(chat, params)

    def _complete_in_turn(self, chat: list[dict[str, str]], params: GenerationParams) -> LocalCompletion:
        """The ``n`` answers one after another through ``create_chat_completion`` (the caller holds the lock)."""
        kwargs = params.chat_kwargs()
        texts: list[str] = []
        reasons: list[str] = []
        prompt_tokens = completion_tokens = 0
        started = time.perf_counter()
        self._read = self._reused = 0
        for i in range(params.n):
            seed = params.seed + i if params.seed is not None else None
            result = self._generate(chat, seed=seed, **kwargs)
            choice = result["choices"][0]
            texts.append(choice["message"]["content"] or "")
            reasons.append(choice.get("finish_reason") or "stop")
            usage = result["usage"]
            prompt_tokens = usage["prompt_tokens"]  # the same prompt each time: count it once
            completion_tokens += usage["completion_tokens"]
        # prompt_tokens - reused is what the model evaluated over all n samples (sample i > 0 re-reads
        # only the prompt's last token), so "processed" is the real work and the prompt is counted once.
        evaluated = self._read - self._reused
        reused = max(0, prompt_tokens - evaluated) if self._read else 0
        return LocalCompletion(texts=tuple(texts), finish_reasons=tuple(reasons), prompt_tokens=prompt_tokens,
                               completion_tokens=completion_tokens, seconds=time.perf_counter() - started,
                               reused_prompt_tokens=reused)

    def _complete_together(self, chat: list[dict[str, str]], params: GenerationParams) -> LocalCompletion | None:
        """``n`` answers decoded together from one reading of the prompt (``llm.batched``), starting from the
        best saved prefix, whose state is saved again after; None for a chat format ``llm.batched`` cannot
        reproduce. The caller holds the lock."""
        from agentforge.llm import batched

        prompt = batched.chat_prompt(self.llama, chat, params.stop)
        if prompt is None:
            log.debug("local.batched_unsupported_chat_format", chat_format=self.llama.chat_format, n=params.n)
            return None
        if self.prefixes is not None:
            try:
                restore = _PrefixLookup(self)[prompt.tokens]
            except KeyError:
                pass
            else:
                restore_state(self.llama, restore)
        try:
            result = batched.complete_parallel(self.llama, chat, params)
        except ValueError as exc:
            raise self._failure(exc) from exc
        except RuntimeError as exc:
            raise LLMError(f"the local model failed: {exc}", model=LOCAL_MODEL) from exc
        if self.prefixes is not None and self.llama.n_tokens:
            self.prefixes.put(capture_state(self.llama))
        return result

    async def acomplete(self, messages: Sequence[Any], params: GenerationParams) -> LocalCompletion:
        return await asyncio.to_thread(self.complete, messages, params)

    def _failure(self, exc: ValueError) -> LLMError:
        text = str(exc)
        if "exceed context window" in text:
            return ContextWindow(
                f"the prompt does not fit the local model's context: {text}. Shorten the prompt or "
                "raise local.n_ctx", model=LOCAL_MODEL, n_ctx=self.settings.n_ctx)
        return LLMError(f"the local model failed: {text}", model=LOCAL_MODEL)

    def _generate(self, chat: list[dict[str, str]], **kwargs: Any) -> Any:
        try:
            return self.llama.create_chat_completion(messages=chat, **kwargs)
        except ValueError as exc:
            raise self._failure(exc) from exc
        except RuntimeError as exc:
            raise LLMError(f"the local model failed: {exc}", model=LOCAL_MODEL) from exc


MAX_DEFAULT_THREADS = 2


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """llama.cpp's thread count when ``local.n_threads`` is unset: the usable cores, at most 2."""
    return max(1, min(usable_cores(), MAX_DEFAULT_THREADS))


_load_lock = threading.Lock()
_models: dict[tuple[Any, ...], LocalModel] = {}
_resolved: dict[tuple[LocalModelSettings, Path], Path] = {}
_loads = 0


def get_local_model(settings: Settings | None = None) -> LocalModel:
    """The shared model for ``settings`` (default: the settings in force), loading it on first use.

    Resolving and verifying the weights and loading them block for up to a few seconds the first time;
    async callers should run this in a thread (``LocalModel.acomplete`` callers get that via the provider).
    """
    global _loads
    settings = settings or get_settings()
    local = settings.local
    with _load_lock:
        path = _resolved.get((local, settings.models_dir))
        if path is None:
            path = resolve_weights(local, settings.models_dir)
            _resolved[(local, settings.models_dir)] = path
        # The weights' identity is in the key, so a file replaced at the same path is loaded afresh: what
        # answers is always what the gateway's cache key names (llm.weights.weights_identity).
        identity = weights_identity(local, settings.models_dir)
        key = (str(path), identity, local, settings.kv_cache_dir)
        model = _models.get(key)
        if model is None:
            for stale in [k for k in _models if k[0] == key[0] and k[1] != key[1]]:  # the file was replaced
                old = _models.pop(stale)
                with old.lock:
                    old.llama.close()
            model = _load(path, local)
            model.prefixes = _prefix_cache(local, settings.kv_cache_dir, identity)
            if model.prefixes is not None:
                model.llama.set_cache(_PrefixLookup(model))  # type: ignore[arg-type]  # duck-typed cache
            _models[key] = model
            _loads += 1
        return model


def _prefix_cache(local: LocalModelSettings, root: Path, identity: str) -> PrefixCache | None:
    if local.prefix_cache_mb == 0:
        return None
    import llama_cpp

    # A saved state is only valid for the weights and the llama.cpp build that made it.
    folder = root / f"{identity[:16]}-llama{llama_cpp.__version__}"
    return PrefixCache(budget_bytes=local.prefix_cache_mb << 20, directory=folder if local.prefix_disk_mb else None,
                       disk_budget_bytes=local.prefix_disk_mb << 20)


class _PrefixLookup:
    """What llama-cpp-python calls its cache: asked for the best saved state before each generation (it restores
    it when that beats what the context holds) and given the context's state after."""

    def __init__(self, model: LocalModel) -> None:
        self.model = model

    def __bool__(self) -> bool:  # consulted even while empty
        return True

    def __getitem__(self, tokens: Sequence[int]) -> PrefixState:
        model = self.model
        wanted = np.asarray(tokens, dtype=np.int32)
        live = common_prefix(np.asarray(model.llama._input_ids, dtype=np.int32), wanted)
        assert model.prefixes is not None
        found = model.prefixes.longest(wanted, better_than=live)
        shared = max(live, found[1] if found else 0)
        model.note_prompt(len(wanted), min(shared, len(wanted) - 1))  # the last token is always read again
        if found is None:
            raise KeyError("no saved prefix longer than the live one")
        return found[0]

    def __contains__(self, tokens: Sequence[int]) -> bool:
        return False

    def __setitem__(self, tokens: Sequence[int], state: PrefixState) -> None:
        assert self.model.prefixes is not None
        self.model.prefixes.put(state)


def capture_state(llama: Llama) -> PrefixState:
    """Sequence 0's KV cache and the tokens it holds (what ``Llama.save_state`` would save, without the
    logits buffer it also copies: about 150 MB for this vocabulary)."""
    low = _import_llama_cpp().llama_cpp
    ctx = llama._ctx.ctx
    size = low.llama_state_seq_get_size(ctx, 0)
    buffer = (ctypes.c_uint8 * size)()
    written = low.llama_state_seq_get_data(ctx, buffer, size, 0)
    return PrefixState(tokens=np.array(llama._input_ids, dtype=np.int32), kv=ctypes.string_at(buffer, written))


def restore_state(llama: Llama, state: PrefixState) -> bool:
    """Put ``state`` in sequence 0 and tell llama-cpp-python which tokens it holds; on failure the context is
    emptied (the call then reads the whole prompt) and False returned."""
    low = _import_llama_cpp().llama_cpp
    ctx = llama._ctx.ctx
    llama._ctx.kv_cache_seq_rm(0, 0, -1)
    source = ctypes.cast(ctypes.c_char_p(state.kv), ctypes.POINTER(ctypes.c_uint8))
    if low.llama_state_seq_set_data(ctx, source, len(state.kv), 0) != len(state.kv):
        log.warning("local.prefix_restore_failed", tokens=len(state.tokens))
        llama._ctx.kv_cache_seq_rm(0, 0, -1)
        llama.n_tokens = 0
        return False
    n = len(state.tokens)
    llama.input_ids[:n] = state.tokens
    llama.n_tokens = n
    llama._requires_eval = True  # the logits are not restored: the next generation re-reads a token
    return True


@lru_cache(maxsize=1)
def _prefix_llama_class() -> type:
    llama_cpp = _import_llama_cpp()

    class PrefixLlama(llama_cpp.Llama):  # type: ignore[misc,name-defined]
        """``Llama`` whose cache states are sequence KV states (``PrefixState``)."""

        def save_state(self) -> PrefixState:  # type: ignore[override]
            return capture_state(self)

        def load_state(self, state: PrefixState) -> None:  # type: ignore[override]
            restore_state(self, state)

    return PrefixLlama


def _load(path: Path, local: LocalModelSettings) -> LocalModel:
    llama_cpp = _import_llama_cpp()
    threads = local.n_threads or default_threads()
    started = time.perf_counter()
    # No extra (repacked) weight buffers: a natively built ggml uses AMX tiles when the CPU advertises them,
    # and in some VMs (this project's CI machine) the CPU advertises AMX but traps on it (SIGILL, no message).
    # Llama() takes no argument for it, so its default model parameters are swapped while it loads.
    low_level = getattr(llama_cpp, "llama_cpp", llama_cpp)  # the ctypes module Llama() reads its defaults from
    defaults = low_level.llama_model_default_params
    context_defaults = low_level.llama_context_default_params

    def _no_extra_buffers() -> Any:
        params = defaults()
        if hasattr(params, "use_extra_bufts"):
            params.use_extra_bufts = False
        return params

    def _parallel_sequences() -> Any:
        # Several sequences over one unified KV cache: the n answers of one prompt decode together
        # (llm.batched), sharing the prompt's cells instead of copying them.
        params = context_defaults()
        params.n_seq_max = local.n_seq_max
        if hasattr(params, "kv_unified"):
            params.kv_unified = True
        return params

    try:
        low_level.llama_model_default_params = _no_extra_buffers
        low_level.llama_context_default_params = _parallel_sequences
        llama = _prefix_llama_class()(
            model_path=str(path),
            n_ctx=local.n_ctx,
            n_batch=local.n_batch,
            n_threads=threads,
            n_threads_batch=threads,  # llama-cpp-python's default is every core: the spin trap again
            verbose=False,
        )
    except (ValueError, RuntimeError) as exc:
        raise ModelNotFound(f"llama.cpp could not load {path}: {exc}", model=LOCAL_MODEL,
                            path=str(path)) from exc
    finally:
        low_level.llama_model_default_params = defaults
        low_level.llama_context_default_params = context_defaults
    seconds = time.perf_counter() - started
    # Free it before interpreter teardown: llama.cpp's __del__ fails noisily once modules are gone.
    atexit.register(unload_local_models)
    log.info("local.model_loaded", path=str(path), seconds=round(seconds, 3), n_threads=threads,
             n_ctx=local.n_ctx, omp_wait_policy=os.environ.get(_WAIT_POLICY_ENV))
    return LocalModel(llama=llama, path=path, settings=local, load_seconds=seconds)


def load_count() -> int:
    """How many times this process has loaded a model (for tests and ``agentforge models``)."""
    return _loads


def unload_local_models() -> None:
    """Free every loaded model; the next call loads again."""
    with _load_lock:
        for model in _models.values():
            with model.lock:
                model.llama.close()
        _models.clear()
        _resolved.clear()


def _served_model(model: str) -> str:
    name = model.split("/", 1)[1] if model.startswith(PROVIDER + "/") else model
    if name != MODEL_NAME:
        raise ModelNotFound(
            f"the local provider serves only '{LOCAL_MODEL}', not '{PROVIDER}/{name}'. To run other weights, "
            "point local.path at your GGUF and keep the model name",
            model=f"{PROVIDER}/{name}",
        )
    return name


def _fill_response(model_response: Any, name: str, result: LocalCompletion) -> Any:
    import litellm

    model_response.choices = [
        litellm.Choices(index=i, finish_reason=reason,
                        message=litellm.Message(role="assistant", content=text))
        for i, (text, reason) in enumerate(zip(result.texts, result.finish_reasons, strict=True))
    ]
    model_response.usage = litellm.Usage(
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        total_tokens=result.prompt_tokens + result.completion_tokens,
        prompt_tokens_details={"cached_tokens": result.reused_prompt_tokens},
    )
    model_response.model = f"{PROVIDER}/{name}"
    model_response.created = int(time.time())
    return model_response


_handler: Any = None
_register_lock = threading.Lock()


def _make_handler() -> Any:
    from litellm.llms.custom_llm import CustomLLM

    class LocalLLM(CustomLLM):  # type: ignore[misc]
        """litellm's view of the local model; defined here so importing this module stays cheap."""

        def completion(self, model: str, messages: list[Any], api_base: str | None, custom_prompt_dict: dict,
                       model_response: Any, print_verbose: Any, encoding: Any, api_key: str | None,
                       logging_obj: Any, optional_params: dict[str, Any], acompletion: Any = None,
                       litellm_params: Any = None, logger_fn: Any = None, headers: dict | None = None,
                       timeout: Any = None, client: Any = None) -> Any:
            name = _served_model(model)
            params = GenerationParams.from_optional_params(optional_params)
            result = get_local_model().complete(messages, params)
            return _fill_response(model_response, name, result)

        async def acompletion(self, model: str, messages: list[Any], api_base: str | None,
                              custom_prompt_dict: dict, model_response: Any, print_verbose: Any,
                              encoding: Any, api_key: str | None, logging_obj: Any,
                              optional_params: dict[str, Any], acompletion: Any = None,
                              litellm_params: Any = None, logger_fn: Any = None,
                              headers: dict | None = None, timeout: Any = None, client: Any = None) -> Any:
            name = _served_model(model)
            params = GenerationParams.from_optional_params(optional_params)
            settings = get_settings()
            # Loading (first call) and generating both block: keep them off the event loop.
            result = await asyncio.to_thread(lambda: get_local_model(settings).complete(messages, params))
            return _fill_response(model_response, name, result)

    return LocalLLM()


def register_local_provider() -> None:
    """Make ``local/...`` model strings reach the embedded model through litellm. Idempotent."""
    global _handler
    import litellm

    with _register_lock:
        if _handler is None:
            _handler = _make_handler()
        present = any(entry.get("provider") == PROVIDER and entry.get("custom_handler") is _handler
                      for entry in litellm.custom_provider_map)
        if not present:
            others = [e for e in litellm.custom_provider_map if e.get("provider") != PROVIDER]
            litellm.custom_provider_map = [*others, {"provider": PROVIDER, "custom_handler": _handler}]
            litellm.utils.custom_llm_setup()
            zero = {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0,
                    "cache_creation_input_token_cost": 0.0, "cache_read_input_token_cost": 0.0}
            litellm.register_model({LOCAL_MODEL: {**zero, "litellm_provider": PROVIDER, "mode": "chat"}})


def find_agentforge_error(exc: BaseException) -> AgentforgeError | None:
    """The agentforge error behind ``exc``, following ``__cause__``/``__context__`` (litellm's wrapping)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, AgentforgeError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
