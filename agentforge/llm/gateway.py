"""The one way agentforge calls a model.

``Gateway.acomplete(LLMRequest) -> LLMResponse`` resolves aliases, consults the content-addressed
cache, holds a per-model concurrency limit, retries transient failures with exponential backoff,
and counts tokens and cost. litellm is imported on first use only; its exceptions are mapped into
:mod:`agentforge.errors` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import weakref
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from agentforge.config import ModelAlias, Settings, get_settings
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
from agentforge.logs import get_logger

log = get_logger(__name__)

# Set while an evaluation runs: cache every call, seeded sampling included, so re-running the
# same evaluation costs no new LLM calls.
cache_everything: ContextVar[bool] = ContextVar("agentforge_cache_everything", default=False)

LOCAL_PREFIX = "local/"
SCRIPTED_PREFIX = "scripted/"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    initial_delay: float = 0.5
    backoff: float = 2.0
    max_delay: float = 8.0
    jitter: float = 0.1

    def delay(self, attempt: int, rng: random.Random) -> float:
        base = min(self.max_delay, self.initial_delay * self.backoff ** (attempt - 1))
        return base * (1 + rng.uniform(-self.jitter, self.jitter))


@dataclass
class GatewayStats:
    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    @property
    def usage(self) -> Usage:
        return Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens)

    def record(self, response: LLMResponse) -> None:
        self.calls += 1
        self.retries += response.attempts - 1
        if response.cached:
            self.cache_hits += 1
        else:
            self.prompt_tokens += response.usage.prompt_tokens
            self.completion_tokens += response.usage.completion_tokens
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


class LiteLLMBackend:
    """Every model string litellm understands, including our in-process ``local/`` provider."""

    async def acomplete(self, request: LLMRequest) -> RawCompletion:
        litellm = import_litellm()
        if request.model.startswith(LOCAL_PREFIX):
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
            ),
            cost=float(cost),
        )


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
    ) -> None:
        self.settings = settings or get_settings()
        if cache is None:
            cache = ResponseCache(self.settings.cache_dir if self.settings.cache_enabled else None)
        self.cache = cache
        self.retry = retry or RetryPolicy(max_attempts=self.settings.max_retries + 1)
        self.stats = GatewayStats()
        self._aliases = self.settings.aliases()
        self._resolved: dict[str, ResolvedModel] = {}
        self._rng = random.Random(seed)
        self._litellm = LiteLLMBackend()
        self._limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = (
            weakref.WeakKeyDictionary()
        )

    def resolve(self, name: str) -> ResolvedModel:
        resolved = self._resolved.get(name)
        if resolved is None:
            resolved = self._resolved[name] = resolve_model(name, self._aliases)
        return resolved

    def _backend(self, model: str) -> Backend:
        if model.startswith(SCRIPTED_PREFIX):
            from agentforge.llm.scripted import get_script

            return get_script(model[len(SCRIPTED_PREFIX):])
        return self._litellm

    def _limit(self, model: str, size: int) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        per_loop = self._limits.setdefault(loop, {})
        if model not in per_loop:
            per_loop[model] = asyncio.Semaphore(size)
        return per_loop[model]

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

    async def acomplete(self, request: LLMRequest) -> LLMResponse:
        resolved = self.resolve(request.model)
        request = self.prepare(request, resolved)
        use_cache = self.cache.directory is not None and (request.cacheable() or cache_everything.get())
        key = request.cache_key() if use_cache else ""
        if use_cache:
            hit = self.cache.get(key)
            if hit is not None:  # trusted data we wrote ourselves: construct without re-validating
                response = LLMResponse.model_construct(
                    model=request.model, texts=tuple(hit["texts"]), usage=Usage.model_construct(**hit.get("usage", {})),
                    cost=0.0, latency_s=0.0, cached=True, attempts=1,
                )
                self.stats.record(response)
                return response
        backend = self._backend(request.model)
        started = time.perf_counter()
        attempt = 0
        async with self._limit(request.model, resolved.max_concurrency):
            while True:
                attempt += 1
                try:
                    raw = await backend.acomplete(request)
                    break
                except LLMError as exc:
                    if not exc.retryable or attempt >= self.retry.max_attempts:
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


_shared: dict[int, Gateway] = {}


def shared_gateway(settings: Settings | None = None) -> Gateway:
    """One gateway per settings object, so runs in a process share its cache front and limits."""
    settings = settings or get_settings()
    gateway = _shared.get(id(settings))
    if gateway is None or gateway.settings is not settings:
        gateway = _shared[id(settings)] = Gateway(settings)
    return gateway
