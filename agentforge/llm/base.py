"""The LLM contract: one request model, one response model, one backend protocol."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

# Provider kwargs that never change the answer (price, transport, bookkeeping), so they stay out of the
# cache key; headers may carry credentials. Every other kwarg is sent to the model and keyed.
UNKEYED_EXTRA = frozenset({
    "input_cost_per_token", "output_cost_per_token", "extra_headers", "headers", "metadata",
    "num_retries", "max_retries", "request_timeout",
})


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["system", "user", "assistant", "tool"]
    content: str


class LLMRequest(BaseModel):
    """A canonical model call. Its cache key covers everything that changes the answer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    messages: tuple[Message, ...]
    temperature: float = 0.0
    top_p: float | None = None
    max_tokens: int | None = None
    n: int = 1
    seed: int | None = None
    stop: tuple[str, ...] | None = None
    response_schema: dict[str, Any] | None = Field(default=None, description="Constrain output to this JSON schema.")
    api_base: str | None = None
    api_key: str | None = Field(default=None, repr=False, description="Never part of the cache key.")
    cache: bool | None = Field(
        default=None,
        description="None: the gateway decides (temperature 0; during evaluations seeded sampling too).")
    timeout: float | None = None
    extra: dict[str, Any] = Field(
        default_factory=dict,
        description="Provider kwargs (top_k, repeat_penalty, pricing, headers); keyed except UNKEYED_EXTRA.")

    def cache_key(self, context: Mapping[str, Any] | None = None) -> str:
        """The content address of this call's answer.

        It covers every parameter sent that can change the answer, provider kwargs in ``extra`` included,
        and ``context``: what the request alone does not say, such as the identity of the weights behind
        a model name (``{"weights": sha256}``) or the sampling round of a repeated evaluation.
        """
        data = self.model_dump(mode="json", exclude={"api_key", "cache", "timeout", "extra"}, exclude_none=True)
        extra = {k: v for k, v in self.extra.items() if k not in UNKEYED_EXTRA}  # any value: dumped with repr
        if extra:
            data["extra"] = extra
        if context:
            data["context"] = dict(context)
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()

    def prompt_text(self) -> str:
        return "\n".join(f"[{m.role}] {m.content}" for m in self.messages)


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reused_prompt_tokens: int = Field(
        default=0,
        description="Of prompt_tokens, those read from a prefix cache, not evaluated: the local model's saved "
                    "prefixes, or a provider's prompt caching.")

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            reused_prompt_tokens=self.reused_prompt_tokens + other.reused_prompt_tokens,
        )


class LLMResponse(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    texts: tuple[str, ...]
    usage: Usage = Field(default_factory=Usage)
    cost: float = 0.0
    latency_s: float = 0.0
    cached: bool = False
    attempts: int = 1

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""


class RawCompletion(BaseModel):
    """What a backend returns, before the gateway adds latency, caching and attempts."""

    texts: tuple[str, ...]
    usage: Usage = Field(default_factory=Usage)
    cost: float = 0.0


class Backend(Protocol):
    """Something that can answer a request; the gateway handles caching, retries and limits."""

    async def acomplete(self, request: LLMRequest) -> RawCompletion: ...
