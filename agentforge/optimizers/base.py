"""The optimizer contract: what an optimizer is handed (``Evidence``, an ``Allowance``), what it returns
(``Candidate`` objects with typed changes), and the one way it asks a model for a structured reply.

An optimizer is a plain object. Its configuration, the gateway it calls and its RNG are given to the
constructor; ``apropose(parent, evidence, allowance)`` returns candidates and does nothing else: no
files, no memory writes, no run store. What it knows of the world is the evidence it is handed, which
the evolve loop builds from train-split tasks only.

A model reply that does not fit its schema is *malformed*: it is counted on the allowance and the
proposal goes on without it, so a weak optimizer model can slow a run down but never crash it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentforge.evaluation.report import TaskResult
from agentforge.llm.base import LLMRequest, Message
from agentforge.llm.gateway import Gateway
from agentforge.logs import get_logger
from agentforge.memory.base import Hit
from agentforge.runtime.trace import NodeTrace
from agentforge.workflow.spec import Candidate, WorkflowSpec

log = get_logger(__name__)

SUCCESS = 1.0  # a task counts as solved (a source of demos) at this score


class ComponentRecord(BaseModel):
    """One node's view of one task: what it was given, what it said, how the task ended (GEPA's triple)."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    node: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    score: float
    feedback: str | None = None
    error: str | None = None


def _walk(traces: Sequence[NodeTrace]) -> Iterator[NodeTrace]:
    for trace in traces:
        yield trace
        yield from _walk(trace.children)


@runtime_checkable
class TrainScorer(Protocol):
    """Scores a spec on train tasks, for optimizers that search by trying (MIPRO's trials). The loop's
    implementation refuses any id outside the train split, records every id asked for, and charges the
    calls to the optimizer's budget."""

    async def ascore(self, spec: WorkflowSpec, task_ids: Sequence[str]) -> list[TaskResult]: ...


class Evidence(BaseModel):
    """What an optimizer learns from: the parent's results on a train minibatch (traces included) and
    the experience retrieved for those tasks. Never holds a val or test task."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    env: str
    instruction: str = Field(default="", description="The environment's instruction to the agent.")
    results: tuple[TaskResult, ...] = ()
    experience: tuple[Hit, ...] = Field(default=(), description="Attempts on similar train tasks, from memory.")
    lessons: tuple[Hit, ...] = Field(default=(), description="Consolidated lessons for this task family.")
    generation: int = 0
    train_ids: tuple[str, ...] = Field(default=(), description="Train task ids a scorer may be asked about.")
    scorer: TrainScorer | None = Field(default=None, description="Scores specs on train tasks (None: not offered).")

    def task_ids(self) -> tuple[str, ...]:
        """Every task id this evidence shows, from results and from retrieved experience."""
        ids = [r.task_id for r in self.results]
        for hit in (*self.experience, *self.lessons):
            if hit.record.task_id:
                ids.append(hit.record.task_id)
            ids.extend(hit.record.provenance.source_task_ids)
        return tuple(dict.fromkeys(ids))

    def score(self) -> float:
        return sum(r.score for r in self.results) / len(self.results) if self.results else 0.0

    def successes(self) -> list[TaskResult]:
        return [r for r in self.results if r.score >= SUCCESS and r.failure is None]

    def failures(self) -> list[TaskResult]:
        return [r for r in self.results if r.score < SUCCESS or r.failure is not None]

    def records(self, node: str) -> list[ComponentRecord]:
        """Every run of ``node`` (at any depth, every step of an episode) with its task's outcome."""
        out: list[ComponentRecord] = []
        for result in self.results:
            feedback = result.feedback or (result.failure.message if result.failure else None)
            for step in result.traces:
                for trace in _walk(step.nodes):
                    if trace.node == node:
                        out.append(ComponentRecord(
                            task_id=result.task_id, node=node, inputs=dict(trace.inputs),
                            outputs=dict(trace.outputs), score=result.score, feedback=feedback,
                            error=trace.error))
        return out


@dataclass
class Allowance:
    """What one ``apropose`` call may spend on its own model calls, and what it did spend.

    The loop sets ``calls`` from the optimizer's remaining budget and reads ``used`` and ``malformed``
    afterwards; an optimizer checks ``left`` before each call (``ask_json`` does this for it).
    """

    calls: int
    used: int = 0
    malformed: int = 0

    @property
    def left(self) -> int:
        return max(0, self.calls - self.used)

    def take(self) -> bool:
        """Claim one call; False (nothing claimed) when none is left."""
        if self.used >= self.calls:
            return False
        self.used += 1
        return True

    def charge(self, calls: int) -> None:
        """Record calls made on the optimizer's behalf (a scorer's trial runs), which may overdraw ``left``."""
        self.used += calls


@runtime_checkable
class Optimizer(Protocol):
    """Proposes new versions of a workflow. Constructed as ``cls(gateway=..., model=..., rng=..., **config)``."""

    name: ClassVar[str]
    calls_per_proposal: ClassVar[int]  # the allowance it needs by default for one proposal

    async def apropose(self, parent: WorkflowSpec, evidence: Evidence, allowance: Allowance) -> list[Candidate]: ...


T = TypeVar("T", bound=BaseModel)


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A pydantic model's JSON schema, closed (no extra keys), for constrained decoding."""
    schema = model.model_json_schema()

    def close(node: Any) -> None:
        if isinstance(node, dict):
            node.pop("title", None)
            if node.get("type") == "object" and "properties" in node:
                node.setdefault("additionalProperties", False)
                node["required"] = list(node["properties"])
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    return schema


async def ask_json(gateway: Gateway, model: str, messages: Sequence[Message], reply: type[T], allowance: Allowance,
                   *, rng: random.Random, temperature: float = 0.7, max_tokens: int = 400) -> T | None:
    """Ask ``model`` for a reply shaped as ``reply`` (JSON-schema constrained). None when the allowance is
    spent or the reply is malformed (counted). The call is seeded from ``rng`` and cached, so a resumed or
    repeated run with the same seed replays it from the gateway's cache instead of calling again."""
    if not allowance.take():
        return None
    request = LLMRequest(model=model, messages=tuple(messages), temperature=temperature, max_tokens=max_tokens,
                         seed=rng.randrange(2**31), response_schema=json_schema(reply), cache=True)
    response = await gateway.acomplete(request)
    text = response.texts[0] if response.texts else ""
    try:
        return reply.model_validate(json.loads(text))
    except (ValueError, ValidationError) as exc:
        allowance.malformed += 1
        log.info("optimizer.malformed_reply", model=model, reply=reply.__name__, error=str(exc)[:200],
                 text=text[:200])
        return None
