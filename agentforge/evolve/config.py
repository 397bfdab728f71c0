"""One config model drives an evolve run (library, command line and resume alike).

``EvolveConfig`` is stored in the run folder when a run starts and read back on ``--resume``, so a
resumed run continues with exactly the settings it began with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentforge.errors import InputError

Role = Literal["executor", "optimizer"]
ROLES: tuple[Role, ...] = ("executor", "optimizer")


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Config):
    """Caps on what a role (or the whole run) may spend. None: no cap. Calls count every model call the
    run asks for, cached or not, so a resumed or repeated run stops exactly where the original did."""

    calls: int | None = Field(default=None, ge=0)
    tokens: int | None = Field(default=None, ge=0)
    usd: float | None = Field(default=None, ge=0)
    minutes: float | None = Field(default=None, ge=0)


class BudgetConfig(_Config):
    generations: int = Field(default=5, ge=0)
    total: Limits = Field(default_factory=Limits)
    executor: Limits = Field(default_factory=Limits)
    optimizer: Limits = Field(default_factory=Limits)
    calls_per_proposal: int | None = Field(
        default=None, ge=0, description="Most model calls one optimizer.apropose may make (None: its own default).")


class SplitConfig(_Config):
    """How many tasks of each of the environment's splits the run uses (None: all of them)."""

    train: int | None = Field(default=None, ge=1)
    val: int | None = Field(default=None, ge=1)
    test: int | None = Field(default=None, ge=1)
    min_train: int = Field(default=4, ge=1)
    min_val: int = Field(default=4, ge=1)
    min_test: int = Field(default=4, ge=1)


class AcceptanceConfig(_Config):
    method: Literal["bootstrap", "sign"] = "bootstrap"
    level: float = Field(default=0.9, gt=0.5, lt=1.0)
    resamples: int = Field(default=2000, ge=100)


class EvolveConfig(_Config):
    """Everything an evolve run is: what to optimise with, on how much data, within what budget."""

    optimizers: tuple[str, ...] = ("reflect",)
    optimizer_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per optimizer name: keyword config for its constructor.")
    model: str | None = Field(default=None, description="Executor model override (None: the workflow's own).")
    optimizer_model: str = "local"
    seed: int = 0
    splits: SplitConfig = Field(default_factory=SplitConfig)
    minibatch: int = Field(default=8, ge=1, description="Train tasks a parent and its candidates are tried on.")
    candidates_per_generation: int = Field(default=3, ge=1)
    repeats: int = Field(default=3, ge=1, description="Evaluations per task of a sampling workflow.")
    selector: Literal["pareto", "softmax"] = "pareto"
    selector_uniform: float = Field(default=0.2, ge=0.0, le=1.0, description="Chance of a uniform pick.")
    acceptance: AcceptanceConfig = Field(default_factory=AcceptanceConfig)
    patience: int = Field(default=3, ge=1, description="Stop after this many generations with no accepted candidate.")
    novelty_distance: float = Field(default=0.02, ge=0.0, le=1.0,
                                    description="A candidate whose changed text is this close (cosine) to one "
                                                "already tried is a near-duplicate.")
    concurrency: int = Field(default=4, ge=1)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    gate: dict[str, Any] = Field(default_factory=dict, description="GateConfig fields (caps, thresholds).")
    memory: str | None = Field(default=None, description="Memory preset or YAML; None: one in the run folder.")
    runs_dir: Path | None = Field(default=None, description="Where run folders go (None: settings.runs_dir).")


def parse_budget(text: str, base: BudgetConfig | None = None) -> BudgetConfig:
    """``calls=400,usd=1,minutes=30,generations=5,optimizer.calls=100`` -> a BudgetConfig.

    A bare key caps the whole run (``total``); ``executor.`` or ``optimizer.`` caps one role.
    """
    base = base or BudgetConfig()
    data: dict[str, Any] = base.model_dump()
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, value = part.partition("=")
        if not sep:
            raise InputError(f"budget item '{part}' must look like key=value (e.g. calls=400)")
        role, _, field = key.strip().rpartition(".")
        role = role or "total"
        try:
            if field == "generations" and role == "total":
                data["generations"] = int(value)
                continue
            if field == "calls_per_proposal" and role == "total":
                data["calls_per_proposal"] = int(value)
                continue
            if role not in ("total", "executor", "optimizer") or field not in Limits.model_fields:
                raise InputError(f"unknown budget item '{key}': use generations, calls, tokens, usd or minutes, "
                                 "optionally prefixed by executor. or optimizer.")
            data[role][field] = float(value) if field in ("usd", "minutes") else int(value)
        except ValueError:
            raise InputError(f"budget item '{part}': '{value}' is not a number") from None
    return BudgetConfig.model_validate(data)
