"""The one way agentforge calls a model.

``Gateway.acomplete(LLMRequest) -> LLMResponse`` resolves aliases, consults the content-addressed
cache, holds a per-model concurrency limit, retries transient failures with exponential backoff,
and counts tokens and cost. litellm is imported on first use only; its exceptions are mapped into
:mod:`agentforge.errors` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
import weakref
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from agentforge.config import ModelAlias, Settings, get_settings, use_settings
from agentforge.errors import (
    AgentforgeError,
    Auth,
    BudgetExceeded,
    ContextWindow,
    LLMError,
    ModelNotFound,
    RateLimit,
    Transport,
)
from agentforge.llm.base import Backend, LLMRequest, LLMResponse, RawCompletion, Usage
from agentforge.llm.cache import ResponseCache
from agentforge.llm.scheduler import Admission, PrefixScheduler
from agentforge.llm.weights import weights_identity
from agentforge.logs import get_logger
from agentforge.retry import RetryPolicy

log = get_logger(__name__)

# Set while an evaluation runs. Reproducible calls are then cached, seeded sampling included, so re-running
# the same evaluation costs no new LLM calls; unseeded sampling at temperature > 0 is not (each evaluation
# draws fresh samples, so repeated evaluations are independent) unless ``Settings.cache_sampling`` asks.
evaluating: ContextVar[bool] = ContextVar("agentforge_evaluating", default=False)
cache_everything = evaluating  # the former name, still set by the evaluator and the executors

# Which repeat of an evaluation is running (0: the first). See :func:`sampling_round`.
_round: ContextVar[int] = ContextVar("agentforge_sampling_round", default=0)

LOCAL_PREFIX = "local/"
SCRIPTED_PREFIX = "scripted/"


@contextmanager
def sampling_round(index: int) -> Iterator[int]:
    """Run calls as repeat ``index`` of an evaluation, so repeats (for noise estimates) draw fresh samples.

    In round ``index > 0`` a call at temperature > 0 is sent with a seed derived from (its seed, ``index``)
    when it has one, and is cached under its own key, so each round is reproducible but no round replays
    another. Calls at temperature 0 are the same in every round and share the cache. Round 0 is the
    ordinary behaviour. Applies to calls made in this context (this process).
    """
    if index < 0:
        raise ValueError(f"a sampling round is 0 or more, got {index}")
    token = _round.set(index)
    try:
        yield index
    finally:
        _round.reset(token)


def current_sampling_round() -> int:
    """The sampling round in force here (0 outside :func:`sampling_round`); executors carry it to workers."""
    return _round.get()


def round_seed(seed: int, index: int) -> int:
    """The seed a seeded call uses in sampling round ``index``: the seed itself in round 0."""
    if index == 0:
        return seed
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass
class GatewayStats:
    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    reused_prompt_tokens: int = 0  # of the fresh calls' prompt tokens, those read from a prefix cache
    reordered: int = 0  # local calls admitted ahead of an older waiter because they share its predecessor's prefix

    @property
    def usage(self) -> Usage:
        return Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
                     reused_prompt_tokens=self.reused_prompt_tokens)

    def record(self, response: LLMResponse) -> None:
        self.calls += 1
        self.retries += response.attempts - 1
        if response.cached:
            self.cache_hits += 1
        else:
            self.prompt_tokens += response.usage.prompt_tokens
            self.completion_tokens += response.usage.completion_tokens
            self.reused_prompt_tokens += response.usage.reused_prompt_tokens
            self.cost += response.cost


@dataclass(frozen=True)
class ResolvedModel:
    model: str
    api_base: str | None = None
    api_key: str | None = None
    max_concurrency: int = 32
    params: dict[str, Any] = field(default_factory=dict)


def resolve_model(name: str, aliases: dict[str, ModelAlias]) -> ResolvedModel:
    """An alias, or a ``provider/model`` string passed to litellm as is."""
    alias = aliases.get(name)
    if alias is not None:
        key = os.environ.get(alias.api_key_env) if alias.api_key_env else None
        limit = alias.max_concurrency or (1 if alias.model.startswith(LOCAL_PREFIX) else 32)
        return ResolvedModel(alias.model, alias.api_base, key, limit, dict(alias.params))
    if "/" not in name:
        known = ", ".join(sorted(aliases))
        raise ModelNotFound(
            f"unknown model '{name}': not an alias ({known}) and not a 'provider/model' string",
            model=name,
        )
    return ResolvedModel(name, max_concurrency=1 if name.startswith(LOCAL_PREFIX) else 32)


def litellm_providers() -> list[str]:
    """The providers litellm knows, by the prefix of a model string (imports litellm: run and eval paths only)."""
    litellm = import_litellm()
    return sorted({str(getattr(p, "value", p)) for p in litellm.provider_list})


def check_model(name: str, aliases: dict[str, ModelAlias]) -> ResolvedModel:
    """``resolve_model``, and the provider of the model string must be one litellm (or agentforge) serves.

    An unknown provider is ``ModelNotFound`` listing the aliases and the providers, instead of litellm's
    raw error from the first call.
    """
    resolved = resolve_model(name, aliases)
    if resolved.model.startswith((LOCAL_PREFIX, SCRIPTED_PREFIX)):
        return resolved
    provider = resolved.model.partition("/")[0]
    providers = litellm_providers()
    if provider not in providers:
        via = f" (alias '{name}' names '{resolved.model}')" if name != resolved.model else ""
        from difflib import get_close_matches

        close = get_close_matches(provider, providers, n=1)
        guess = f"did you mean '{close[0]}/...'? " if close else ""
        raise ModelNotFound(
            f"unknown model '{name}'{via}: litellm has no provider '{provider}'. {guess}"
            f"Configured aliases: {', '.join(sorted(aliases))}. "
            f"Providers: {', '.join([LOCAL_PREFIX.rstrip('/'), *providers])}",
            model=name)
    return resolved


class LiteLLMBackend:
    """Every model string litellm understands, including our in-process ``local/`` provider.

    ``settings`` are the ones the local provider loads its weights by (default: those in force at each
    call); the gateway passes its own, so the weights it keys its cache on are the weights that answer.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    async def acomplete(self, request: LLMRequest) -> RawCompletion:
        litellm = import_litellm()
        local = request.model.startswith(LOCAL_PREFIX)
        if local:
            from agentforge.llm.local import register_local_provider

            register_local_provider()
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": [m.model_dump() for m in request.messages],
            "temperature": request.temperature,
            "n": request.n,
        }
        for name in ("top_p", "max_tokens", "seed", "api_base", "api_key", "timeout"):
            value = getattr(request, name)
            if value is not None:
                kwargs[name] = value
        if request.stop:
            kwargs["stop"] = list(request.stop)
        kwargs.update(request.extra)
        if "input_cost_per_token" in request.extra and request.model not in _registered_models:
            _register_priced_model(litellm, request.model, request.extra)
        if request.response_schema is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": request.response_schema, "strict": True},
            }
        try:
            if local and self.settings is not None:
                with use_settings(self.settings):
                    response = await litellm.acompletion(**kwargs)
            else:
                response = await litellm.acompletion(**kwargs)
        except Exception as exc:  # the one boundary where litellm's errors enter our tree
            raise map_litellm_error(exc, request.model, request.api_base) from exc
        texts = tuple((choice.message.content or "") for choice in response.choices)
        usage = getattr(response, "usage", None)
        hidden = getattr(response, "_hidden_params", {}) or {}
        cost = hidden.get("response_cost") or 0.0
        return RawCompletion(
            texts=texts,
            usage=Usage(
                prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
                reused_prompt_tokens=_cached_tokens(usage),
            ),
            cost=float(cost),
        )


def _cached_tokens(usage: Any) -> int:
    """OpenAI's ``usage.prompt_tokens_details.cached_tokens``: the local model's reused prefix, or a
    provider's prompt-cache read. Absent or None where the provider does not report it."""
    cached = getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", None)
    return cached if type(cached) is int and cached > 0 else 0


_litellm: Any = None
_registered_models: set[str] = set()


def _register_priced_model(litellm: Any, model: str, extra: dict[str, Any]) -> None:
    """Tell litellm a self-hosted model's price once, so it stops searching its tables on every call."""
    provider, _, name = model.partition("/")
    entry = {
        "input_cost_per_token": float(extra.get("input_cost_per_token", 0.0)),
        "output_cost_per_token": float(extra.get("output_cost_per_token", 0.0)),
        "litellm_provider": provider,
        "mode": "chat",
    }
    litellm.register_model({model: entry, name: entry})
    _registered_models.add(model)


def import_litellm() -> Any:
    """Import litellm once, configured for offline use (no cost-map fetch, no telemetry)."""
    global _litellm
    if _litellm is None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        litellm.telemetry = False
        litellm.suppress_debug_info = True
        litellm.drop_params = True  # a provider that lacks a parameter ignores it instead of failing
        _litellm = litellm
    return _litellm


def map_litellm_error(exc: BaseException, model: str, api_base: str | None = None) -> AgentforgeError:
    """Translate any exception from ``litellm.acompletion`` into the agentforge tree."""
    cause: BaseException | None = exc
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:  # a custom provider's own error arrives wrapped
        if isinstance(cause, AgentforgeError):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or getattr(cause, "original_exception", None) or cause.__context__
    from litellm import exceptions as le

    text = str(getattr(exc, "message", None) or exc) or type(exc).__name__
    where = f" at {api_base}" if api_base else ""
    fields = {"model": model, "provider_error": type(exc).__name__}
    if isinstance(exc, le.ContextWindowExceededError):
        return ContextWindow(f"the prompt does not fit the context window of '{model}': {text}", **fields)
    if isinstance(exc, le.RateLimitError):
        return RateLimit(f"'{model}' is rate limited: {text}", **fields)
    if isinstance(exc, le.AuthenticationError | le.PermissionDeniedError):
        return Auth(f"'{model}' rejected the credentials: {text}", **fields)
    if isinstance(exc, le.BudgetExceededError):
        return BudgetExceeded(f"litellm budget exceeded for '{model}': {text}", **fields)
    if isinstance(exc, le.NotFoundError) or "LLM Provider NOT provided" in text:
        return ModelNotFound(f"model '{model}' was not found{where}: {text}", **fields)
    if isinstance(exc, le.Timeout | le.APIConnectionError) or _is_connection_failure(exc, text):
        return Transport(f"cannot reach '{model}'{where}: {text}", **fields)
    if isinstance(exc, le.ServiceUnavailableError | le.BadGatewayError | le.InternalServerError):
        return Transport(f"'{model}'{where} failed on the server side: {text}", **fields)
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and status >= 500:
        return Transport(f"'{model}'{where} answered {status}: {text}", **fields)
    if isinstance(exc, OSError | asyncio.TimeoutError):
        return Transport(f"cannot reach '{model}'{where}: {text}", **fields)
    return LLMError(f"'{model}' call failed ({type(exc).__name__}): {text}", **fields)


def _is_connection_failure(exc: BaseException, text: str) -> bool:
    """litellm reports a refused connection as a 500 'Connection error.'; look at the cause chain."""
    if "connection error" in text.lower() or "connection refused" in text.lower():
        return True
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionError) or type(cause).__name__ in ("ConnectError", "APIConnectionError"):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


class Gateway:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        cache: ResponseCache | None = None,
        retry: RetryPolicy | None = None,
        seed: int = 0,
        backend: Backend | None = None,
    ) -> None:
        """``backend`` answers every model but ``scripted/...`` (default: litellm, local provider included)."""
        self.settings = settings or get_settings()
        if cache is None:
            cache = ResponseCache(self.settings.cache_dir if self.settings.cache_enabled else None)
        self.cache = cache
        self.retry = retry or RetryPolicy(max_attempts=self.settings.max_retries + 1)
        self.stats = GatewayStats()
        self._aliases = self.settings.aliases()
        self._resolved: dict[str, ResolvedModel] = {}
        self._rng = random.Random(seed)
        self._litellm: Backend = backend or LiteLLMBackend(self.settings)
        self._weights: str | None = None
        self._limits: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore | PrefixScheduler]] = weakref.WeakKeyDictionary()

    def resolve(self, name: str) -> ResolvedModel:
        resolved = self._resolved.get(name)
        if resolved is None:
            # The default backend is litellm: an unknown provider is refused here, typed, before any call.
            check = check_model if isinstance(self._litellm, LiteLLMBackend) else resolve_model
            resolved = self._resolved[name] = check(name, self._aliases)
        return resolved

    def _backend(self, model: str) -> Backend:
        if model.startswith(SCRIPTED_PREFIX):
            from agentforge.llm.scripted import get_script

            return get_script(model[len(SCRIPTED_PREFIX):])
        return self._litellm

    def _limit(self, request: LLMRequest, size: int) -> AbstractAsyncContextManager[Admission | None]:
        """The slot a call waits for, one set per model and event loop.

        The embedded model continues cheapest from the prompt it read last (otherwise it restores a saved
        prefix state, or reads the prompt afresh), so local calls are admitted grouped by prompt prefix.
        Other models keep a plain FIFO semaphore: a remote server runs calls side by side and
        caches prefixes on its own, so reordering there would only add waiting.
        """
        per_loop = self._limits.setdefault(asyncio.get_running_loop(), {})
        limit = per_loop.get(request.model)
        if limit is None:
            local = request.model.startswith(LOCAL_PREFIX)
            limit = per_loop[request.model] = PrefixScheduler(size) if local else asyncio.Semaphore(size)
        if isinstance(limit, PrefixScheduler):
            return limit.slot(request.prompt_text())
        return limit

    def prepare(self, request: LLMRequest, resolved: ResolvedModel | None = None) -> LLMRequest:
        """Resolve an alias in ``request.model`` into the concrete model string and its settings."""
        resolved = resolved or self.resolve(request.model)
        if resolved.model == request.model and not (resolved.api_base or resolved.api_key or resolved.params):
            return request
        updates: dict[str, Any] = {"model": resolved.model}
        if resolved.api_base and request.api_base is None:
            updates["api_base"] = resolved.api_base
        if resolved.api_key and request.api_key is None:
            updates["api_key"] = resolved.api_key
        extra = dict(request.extra)
        for key, value in resolved.params.items():
            if key not in LLMRequest.model_fields:
                extra.setdefault(key, value)  # provider kwargs, e.g. input_cost_per_token for self-hosted models
            elif getattr(request, key) in (None, LLMRequest.model_fields[key].default):
                updates[key] = value
        if extra:
            updates["extra"] = extra
        return request.model_copy(update=updates)

    def should_cache(self, request: LLMRequest) -> bool:
        """Whether a prepared call is read from and written to the cache.

        An explicit ``request.cache`` wins. Otherwise calls at temperature 0 are cached; during an
        evaluation seeded calls are too (they are reproducible), and unseeded sampling only when
        ``settings.cache_sampling`` is on, since caching it would make repeated evaluations replay one sample.
        """
        if self.cache.directory is None:
            return False
        if request.cache is not None:
            return request.cache
        if request.temperature == 0.0:
            return True
        if evaluating.get():
            return request.seed is not None or self.settings.cache_sampling
        return False

    def model_identity(self, model: str) -> str | None:
        """What the model string alone does not say about who answers: the local provider's weights hash."""
        if not model.startswith(LOCAL_PREFIX):
            return None
        local = self.settings.local
        if local.path is not None and not local.sha256:  # an unpinned file may be replaced: check each call
            return weights_identity(local, self.settings.models_dir)
        if self._weights is None:
            self._weights = weights_identity(local, self.settings.models_dir)
        return self._weights

    def cache_key(self, request: LLMRequest) -> str:
        """The cache key of a prepared request: the request, the model's weights, and the sampling round."""
        context: dict[str, Any] = {}
        identity = self.model_identity(request.model)
        if identity is not None:
            context["weights"] = identity
        index = _round.get()
        if index and request.temperature != 0.0 and request.seed is None:
            context["round"] = index  # a seeded call already differs by its round's seed
        return request.cache_key(context)

    async def acomplete(self, request: LLMRequest) -> LLMResponse:
        resolved = self.resolve(request.model)
        request = self.prepare(request, resolved)
        index = _round.get()
        if index and request.temperature != 0.0 and request.seed is not None:
            request = request.model_copy(update={"seed": round_seed(request.seed, index)})
        use_cache = self.should_cache(request)
        key = self.cache_key(request) if use_cache else ""
        if use_cache:
            hit = self.cache.get(key)
            if hit is not None:
                response = _cached_response(request.model, hit)
                if response is not None:
                    self.stats.record(response)
                    return response
                self.cache.reject(key, "not a cached response (texts: list of strings, usage: token counts)")
        backend = self._backend(request.model)
        started = time.perf_counter()
        attempt = 0
        async with self._limit(request, resolved.max_concurrency) as admission:
            if admission is not None and admission.reordered:
                self.stats.reordered += 1
            while True:
                attempt += 1
                try:
                    raw = await backend.acomplete(request)
                    break
                except LLMError as exc:
                    if not self.retry.should_retry(exc, attempt):
                        raise
                    delay = self.retry.delay(attempt, self._rng)
                    log.warning("llm.retry", model=request.model, attempt=attempt, delay_s=round(delay, 3),
                                error=exc.code)
                    await asyncio.sleep(delay)
        response = LLMResponse(
            model=request.model, texts=raw.texts, usage=raw.usage, cost=raw.cost,
            latency_s=time.perf_counter() - started, cached=False, attempts=attempt,
        )
        if use_cache:
            self.cache.put(key, {"texts": list(raw.texts), "usage": raw.usage.model_dump(), "cost": raw.cost})
        self.stats.record(response)
        return response

    def complete(self, request: LLMRequest) -> LLMResponse:
        return asyncio.run(self.acomplete(request))


_USAGE_FIELDS = frozenset(Usage.model_fields)


def _cached_response(model: str, hit: dict[str, Any]) -> LLMResponse | None:
    """The response a cache entry holds, or None when the entry is not one (a corrupt or foreign file)."""
    texts = hit.get("texts")
    usage = hit.get("usage", {})
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        return None
    if not isinstance(usage, dict) or not all(
            k in _USAGE_FIELDS and type(v) is int and v >= 0 for k, v in usage.items()):
        return None
    # Checked above: construct without re-validating, this is the hot path of a cached evaluation.
    return LLMResponse.model_construct(
        model=model, texts=tuple(texts), usage=Usage.model_construct(**usage),
        cost=0.0, latency_s=0.0, cached=True, attempts=1,
    )


_shared: dict[int, Gateway] = {}


def shared_gateway(settings: Settings | None = None) -> Gateway:
    """One gateway per settings object, so runs in a process share its cache front and limits."""
    settings = settings or get_settings()
    gateway = _shared.get(id(settings))
    if gateway is None or gateway.settings is not settings:
        gateway = _shared[id(settings)] = Gateway(settings)
    return gateway
