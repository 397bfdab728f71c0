"""The LLM contract: one request model, one response model, one backend protocol."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


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
    cache: bool | None = Field(default=None, description="None: cache when temperature is 0.")
    timeout: float | None = None
    extra: dict[str, Any] = Field(default_factory=dict, description="Provider kwargs (pricing, headers); not keyed.")

    def cache_key(self) -> str:
        data = self.model_dump(mode="json", exclude={"api_key", "cache", "timeout", "extra"}, exclude_none=True)
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def cacheable(self) -> bool:
        return self.cache if self.cache is not None else self.temperature == 0.0

    def prompt_text(self) -> str:
        return "\n".join(f"[{m.role}] {m.content}" for m in self.messages)


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
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
