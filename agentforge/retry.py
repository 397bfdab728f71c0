"""One retry policy for every transient failure: LLM calls (the gateway) and remote environments.

A ``RetryPolicy`` is a value: how many attempts, the exponential backoff between them (first delay,
growth factor, cap, jitter), and which error codes (``AgentforgeError.code``) are worth another try.
Callers still decide what is *safe* to repeat (the remote env client never repeats a step that may
have reached the server); the policy decides how often and how long to wait.
"""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field

from agentforge.errors import AgentforgeError

__all__ = ["ENV_RETRY_CODES", "LLM_RETRY_CODES", "RetryPolicy"]

LLM_RETRY_CODES = frozenset({"rate_limit", "transport"})
ENV_RETRY_CODES = frozenset({"env_server_error"})


class RetryPolicy(BaseModel):
    """Up to ``max_attempts`` tries; before try ``n + 1`` wait ``initial_delay * backoff ** (n - 1)``
    seconds, capped at ``max_delay``, times ``1 ± jitter``. Errors whose code is in ``retry_on`` retry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(default=4, ge=1, description="Tries in all, the first included.")
    initial_delay: float = Field(default=0.5, ge=0, description="Seconds before the first retry.")
    backoff: float = Field(default=2.0, ge=1, description="Each delay is this many times the previous one.")
    max_delay: float = Field(default=8.0, ge=0, description="No delay is longer.")
    jitter: float = Field(default=0.1, ge=0, le=1, description="Each delay varies by up to this fraction.")
    retry_on: frozenset[str] = Field(default=LLM_RETRY_CODES | ENV_RETRY_CODES,
                                     description="Error codes that are worth another try.")

    @property
    def retries(self) -> int:
        return self.max_attempts - 1

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1 = the first try)."""
        base = min(self.max_delay, self.initial_delay * self.backoff ** (attempt - 1))
        if not self.jitter:
            return base
        return base * (1 + (rng or random).uniform(-self.jitter, self.jitter))

    def retries_code(self, code: str) -> bool:
        return code in self.retry_on

    def should_retry(self, error: AgentforgeError, attempt: int) -> bool:
        """Whether to try again after ``error`` ended try number ``attempt``."""
        return attempt < self.max_attempts and self.retries_code(error.code)
