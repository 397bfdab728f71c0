"""The gate's contract: a ``Monitor`` looks at a candidate beside its parent and returns a ``Verdict``.

A verdict is accept, reject or needs-approval, and every reason names the monitor that gave it, the
evidence it saw (which node or component, which span) and the threshold it applied. Monitors are pure:
no I/O, no clock, no randomness; what the loop knows of the world reaches them as ``GateEvidence``.
``all_of`` and ``any_of`` combine monitors into one; ``Gate`` is the ``all_of`` the evolve loop holds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from agentforge.errors import SafetyViolation
from agentforge.workflow.spec import Candidate, WorkflowSpec

__all__ = ["Decision", "Gate", "GateEvidence", "Monitor", "Reason", "Verdict", "all_of", "any_of", "example_text"]

Decision = Literal["accept", "reject", "needs_approval"]
T = TypeVar("T")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Reason(_Frozen):
    """Why a monitor decided as it did: who, what it saw, and the line it drew."""

    monitor: str
    message: str
    evidence: str = Field(default="", description="What was seen: the node, component or span.")
    threshold: str = Field(default="", description="The limit applied, as configured.")

    def describe(self) -> str:
        extra = "; ".join(p for p in (f"evidence: {self.evidence}" if self.evidence else "",
                                      f"threshold: {self.threshold}" if self.threshold else "") if p)
        return f"[{self.monitor}] {self.message}" + (f" ({extra})" if extra else "")


class Verdict(_Frozen):
    decision: Decision = "accept"
    reasons: tuple[Reason, ...] = ()

    @classmethod
    def accept(cls, *reasons: Reason) -> Verdict:
        return cls(decision="accept", reasons=reasons)

    @classmethod
    def reject(cls, *reasons: Reason) -> Verdict:
        return cls(decision="reject", reasons=reasons)

    @classmethod
    def needs_approval(cls, *reasons: Reason) -> Verdict:
        return cls(decision="needs_approval", reasons=reasons)

    @property
    def accepted(self) -> bool:
        return self.decision == "accept"

    def monitors(self) -> tuple[str, ...]:
        """The monitors that gave a reason, in order, each once."""
        return tuple(dict.fromkeys(r.monitor for r in self.reasons))

    def describe(self) -> str:
        """One line for the decision, then one per reason."""
        return "\n".join([self.decision.replace("_", "-"), *(f"  - {r.describe()}" for r in self.reasons)])

    def require(self) -> None:
        """Raise ``SafetyViolation`` unless accepted (for callers that must not go on)."""
        if not self.accepted:
            raise SafetyViolation(self.describe(), decision=self.decision, monitors=",".join(self.monitors()))


class GateEvidence(_Frozen):
    """What the loop knows that the specs do not say, handed to every monitor.

    ``answers`` and ``examples`` hold, per split (train, val, test), each task's reference answer and
    its input text (``example_text`` of its input values). Indexes built from them (the leak index)
    are memoised on the evidence itself, so one evidence object checked against many candidates
    pays for them once.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    answers: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    examples: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    parent_calls_per_task: float | None = Field(default=None, ge=0, description="Measured on the parent.")

    _memo: dict[Any, Any] = PrivateAttr(default_factory=dict)

    def memo(self, key: Any, build: Callable[[], T]) -> T:
        """``build()``, once per key for this evidence (monitors keep derived indexes here)."""
        if key not in self._memo:
            self._memo[key] = build()
        value: T = self._memo[key]
        return value


def example_text(values: dict[str, Any] | Sequence[Any]) -> str:
    """A task's input text as ``GateEvidence.examples`` holds it: its values, in order, one per line."""
    items = values.values() if isinstance(values, dict) else values
    return "\n".join(v if isinstance(v, str) else repr(v) for v in items)


@runtime_checkable
class Monitor(Protocol):
    """A pure check of a candidate against its parent."""

    name: str

    def check(self, parent: WorkflowSpec, candidate: Candidate, evidence: GateEvidence) -> Verdict: ...


def _combine_all(verdicts: Sequence[Verdict]) -> Verdict:
    reasons = tuple(r for v in verdicts for r in v.reasons)
    decisions = {v.decision for v in verdicts}
    if "reject" in decisions:
        return Verdict.reject(*reasons)
    if "needs_approval" in decisions:
        return Verdict.needs_approval(*reasons)
    return Verdict.accept(*reasons)


class _AllOf:
    def __init__(self, monitors: Sequence[Monitor]) -> None:
        self.monitors = tuple(monitors)
        self.name = "all_of(" + ", ".join(m.name for m in self.monitors) + ")"

    def check(self, parent: WorkflowSpec, candidate: Candidate, evidence: GateEvidence) -> Verdict:
        # Every monitor runs, so a rejection explains all that is wrong, not only the first thing.
        return _combine_all([m.check(parent, candidate, evidence) for m in self.monitors])


class _AnyOf:
    def __init__(self, monitors: Sequence[Monitor]) -> None:
        self.monitors = tuple(monitors)
        self.name = "any_of(" + ", ".join(m.name for m in self.monitors) + ")"

    def check(self, parent: WorkflowSpec, candidate: Candidate, evidence: GateEvidence) -> Verdict:
        verdicts: list[Verdict] = []
        for monitor in self.monitors:
            verdict = monitor.check(parent, candidate, evidence)
            if verdict.accepted:
                return verdict
            verdicts.append(verdict)
        if not verdicts:
            return Verdict.accept()
        # None accepted: the mildest refusal stands, with every monitor's reasons.
        reasons = tuple(r for v in verdicts for r in v.reasons)
        if any(v.decision == "needs_approval" for v in verdicts):
            return Verdict.needs_approval(*reasons)
        return Verdict.reject(*reasons)


def all_of(*monitors: Monitor) -> Monitor:
    """Reject if any rejects; else needs-approval if any asks for it; else accept. Reasons of all, in order."""
    return _AllOf(monitors)


def any_of(*monitors: Monitor) -> Monitor:
    """Accept if any accepts (the first that does); else needs-approval if any asks for it; else reject."""
    return _AnyOf(monitors)


class Gate:
    """What every candidate must pass before the loop evaluates it: its monitors, all of them."""

    def __init__(self, *monitors: Monitor) -> None:
        self.monitors: tuple[Monitor, ...] = monitors
        self._all = _AllOf(monitors)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.monitors]

    def check(self, parent: WorkflowSpec, candidate: Candidate, evidence: GateEvidence | None = None) -> Verdict:
        return self._all.check(parent, candidate, evidence or GateEvidence())

    def __repr__(self) -> str:
        return f"Gate({', '.join(self.names)})"
