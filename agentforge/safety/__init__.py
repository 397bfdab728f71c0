"""Safety: the gate every candidate passes before the evolve loop adopts it, and its monitors.

``base`` holds the contract (``Monitor``, ``Verdict``, ``Reason``, ``GateEvidence``, ``all_of``/``any_of``,
``Gate``); ``gate`` the four invariants' configuration, the run estimate and the leak index; ``monitors``
the invariants themselves. Sandboxing of generated code lives in ``agentforge.sandbox``.
"""

from agentforge.safety.base import (
    Decision,
    Gate,
    GateEvidence,
    Monitor,
    Reason,
    Verdict,
    all_of,
    any_of,
    example_text,
)
from agentforge.safety.gate import GateConfig, LeakIndex, RunEstimate, default_gate, estimate_run
from agentforge.safety.monitors import Caps, LengthCap, NoAnswerLeak, ProtectedNodes

__all__ = [
    "Caps", "Decision", "Gate", "GateConfig", "GateEvidence", "LeakIndex", "LengthCap", "Monitor", "NoAnswerLeak",
    "ProtectedNodes", "Reason", "RunEstimate", "Verdict", "all_of", "any_of", "default_gate", "estimate_run",
    "example_text",
]
