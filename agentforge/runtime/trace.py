"""What happened in a run: per node its inputs, outputs, LLM calls, tokens, cost, latency and errors."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agentforge.llm.base import LLMRequest, LLMResponse


class LLMCall(BaseModel):
    model: str
    messages: list[dict[str, str]]
    texts: list[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reused_prompt_tokens: int = Field(default=0, description="Of prompt_tokens, those read from a prefix cache.")
    cost: float = 0.0
    latency_s: float = 0.0
    cached: bool = False
    attempts: int = 1

    @classmethod
    def of(cls, request: LLMRequest, response: LLMResponse) -> LLMCall:
        return cls.model_construct(
            model=response.model,
            messages=[{"role": m.role, "content": m.content} for m in request.messages],
            texts=list(response.texts),
            prompt_tokens=response.usage.prompt_tokens,
            completion_tokens=response.usage.completion_tokens,
            reused_prompt_tokens=response.usage.reused_prompt_tokens,
            cost=response.cost,
            latency_s=response.latency_s,
            cached=response.cached,
            attempts=response.attempts,
        )


class ToolCall(BaseModel):
    tool: str
    args: dict[str, Any]
    result: str
    error: bool = False
    latency_s: float = 0.0


class NodeTrace(BaseModel):
    node: str
    kind: str
    started_at: float
    latency_s: float = 0.0
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)
    llm_calls: list[LLMCall] = Field(default_factory=list)
    tool_calls: list[ToolCall] = Field(default_factory=list)
    children: list[NodeTrace] = Field(default_factory=list, description="Subworkflow or ensemble members.")
    notes: list[str] = Field(default_factory=list)
    error: str | None = None

    # Fresh (spent) usage and cached usage are kept apart: a cache hit costs nothing, so its tokens are
    # not spend. ``prompt_tokens``, ``completion_tokens`` and ``cost`` are fresh; ``cached_*`` are the hits'.
    # ``reused_prompt_tokens`` is the part of the fresh prompt tokens a prefix cache spared the model.
    @property
    def prompt_tokens(self) -> int:
        return (sum(c.prompt_tokens for c in self.llm_calls if not c.cached)
                + sum(c.prompt_tokens for c in self.children))

    @property
    def reused_prompt_tokens(self) -> int:
        return (sum(c.reused_prompt_tokens for c in self.llm_calls if not c.cached)
                + sum(c.reused_prompt_tokens for c in self.children))

    @property
    def completion_tokens(self) -> int:
        return (sum(c.completion_tokens for c in self.llm_calls if not c.cached)
                + sum(c.completion_tokens for c in self.children))

    @property
    def cost(self) -> float:
        return sum(c.cost for c in self.llm_calls if not c.cached) + sum(c.cost for c in self.children)

    @property
    def cached_prompt_tokens(self) -> int:
        return (sum(c.prompt_tokens for c in self.llm_calls if c.cached)
                + sum(c.cached_prompt_tokens for c in self.children))

    @property
    def cached_completion_tokens(self) -> int:
        return (sum(c.completion_tokens for c in self.llm_calls if c.cached)
                + sum(c.cached_completion_tokens for c in self.children))

    @property
    def cached_cost(self) -> float:
        return sum(c.cost for c in self.llm_calls if c.cached) + sum(c.cached_cost for c in self.children)

    @property
    def calls(self) -> int:
        return len(self.llm_calls) + sum(c.calls for c in self.children)

    @property
    def cached_calls(self) -> int:
        return sum(c.cached for c in self.llm_calls) + sum(c.cached_calls for c in self.children)


class Trace(BaseModel):
    run_id: str
    workflow: str
    workflow_hash: str
    started_at: float = Field(default_factory=time.time)
    latency_s: float = 0.0
    status: str = "running"
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)
    nodes: list[NodeTrace] = Field(default_factory=list)
    error: str | None = None
    resumed: bool = False

    @property
    def prompt_tokens(self) -> int:
        """Fresh (spent) prompt tokens; cache hits are in ``cached_prompt_tokens``."""
        return sum(n.prompt_tokens for n in self.nodes)

    @property
    def reused_prompt_tokens(self) -> int:
        """Of the fresh prompt tokens, those read from a prefix cache rather than evaluated."""
        return sum(n.reused_prompt_tokens for n in self.nodes)

    @property
    def completion_tokens(self) -> int:
        return sum(n.completion_tokens for n in self.nodes)

    @property
    def cost(self) -> float:
        return sum(n.cost for n in self.nodes)

    @property
    def cached_prompt_tokens(self) -> int:
        return sum(n.cached_prompt_tokens for n in self.nodes)

    @property
    def cached_completion_tokens(self) -> int:
        return sum(n.cached_completion_tokens for n in self.nodes)

    @property
    def cached_cost(self) -> float:
        """What the cached calls cost when they first ran (0 where the cache did not keep it)."""
        return sum(n.cached_cost for n in self.nodes)

    @property
    def llm_calls(self) -> int:
        return sum(n.calls for n in self.nodes)

    @property
    def cached_calls(self) -> int:
        return sum(n.cached_calls for n in self.nodes)

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "status": self.status,
            "latency_s": round(self.latency_s, 4),
            "llm_calls": self.llm_calls,
            "cached_calls": self.cached_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "reused_prompt_tokens": self.reused_prompt_tokens,
            "cached_prompt_tokens": self.cached_prompt_tokens,
            "cached_completion_tokens": self.cached_completion_tokens,
            "cost": self.cost,
            "cached_cost": self.cached_cost,
        }

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.model_dump(mode="json")
        data["summary"] = self.summary()
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> Trace:
        data = json.loads(path.read_text(encoding="utf-8"))
        data.pop("summary", None)
        return cls.model_validate(data)
