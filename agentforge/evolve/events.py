"""Typed progress events of an evolve run. A caller subscribes with ``on_event``; the run store keeps
them all, numbered, so a report (or a resumed run) reads the same history."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Event(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: str
    generation: int = 0


class RunStarted(Event):
    type: Literal["run_started"] = "run_started"
    run_id: str
    folder: str
    resumed: bool = False
    splits: dict[str, int] = Field(default_factory=dict)


class Preflight(Event):
    type: Literal["preflight"] = "preflight"
    calls_per_task: float
    seconds_per_call: float
    calls_per_candidate: float
    candidates_affordable: float | None
    expected_minutes: float | None
    text: str


class SeedScored(Event):
    type: Literal["seed_scored"] = "seed_scored"
    spec_hash: str
    split: str
    score: float


class GenerationStarted(Event):
    type: Literal["generation_started"] = "generation_started"
    parent: str
    parent_score: float
    minibatch: tuple[str, ...] = ()


class CandidateProposed(Event):
    type: Literal["candidate_proposed"] = "candidate_proposed"
    spec_hash: str
    parent: str
    optimizer: str
    summary: str = ""


class CandidateRejected(Event):
    """Not added to the pool, and why: ``novelty`` (a repeat or near-duplicate), ``gate``, ``minibatch``
    (no gain on the train minibatch), ``noise`` (the val gain is not beyond noise), ``invalid``."""

    type: Literal["candidate_rejected"] = "candidate_rejected"
    spec_hash: str
    stage: Literal["novelty", "gate", "minibatch", "noise", "invalid", "budget"]
    reason: str


class CandidateAccepted(Event):
    type: Literal["candidate_accepted"] = "candidate_accepted"
    spec_hash: str
    parent: str
    val_score: float
    comparison: str


class ProposalFailed(Event):
    type: Literal["proposal_failed"] = "proposal_failed"
    optimizer: str
    error: str


class BudgetUpdate(Event):
    type: Literal["budget"] = "budget"
    spent: dict[str, Any]


class RunFinished(Event):
    type: Literal["run_finished"] = "run_finished"
    stop_reason: str
    best: str
    seed_val: float
    best_val: float
    seed_test: float
    best_test: float
    comparison: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.model_fields["type"].default: cls
    for cls in (RunStarted, Preflight, SeedScored, GenerationStarted, CandidateProposed, CandidateRejected,
                CandidateAccepted, ProposalFailed, BudgetUpdate, RunFinished)
}


def event_from(data: dict[str, Any]) -> Event:
    cls = EVENT_TYPES.get(str(data.get("type")), Event)
    return cls.model_validate(data)
