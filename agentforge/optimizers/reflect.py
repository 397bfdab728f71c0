"""``reflect``: agentforge's default optimizer, a reflective proposer that works with a weak model.

Asked to write a better instruction, a 0.5B model echoes the task's question back (DSPy's GEPA ended at
its seed that way). So reflect searches over typed edits from a menu, per unprotected agent node:
demos bootstrapped from solved train tasks, hints and lessons appended as one replaceable paragraph,
sampling variants (n answers that vote) and one reflective rewrite whose text is checked (not empty,
not too long, no echo of a shown input). The model *chooses* among the options' descriptions; when it
cannot (no calls left, a malformed reply) the RNG chooses. Defaults and the hint menu are the preset
``optimizers/reflect.yaml``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from agentforge._yaml import parse_yaml
from agentforge.errors import ConfigError, InputError, SpecError
from agentforge.llm.base import Message
from agentforge.llm.gateway import Gateway
from agentforge.logs import get_logger
from agentforge.optimizers._menu import (
    Option,
    SamplingVariant,
    clip,
    demo_options,
    echoes,
    failing,
    hint_options,
    interleave,
    is_success,
    sampling_options,
    show,
    split_hint,
    targets,
)
from agentforge.optimizers.base import Allowance, ComponentRecord, Evidence, ask_json
from agentforge.workflow.edits import Candidate, Change, SetComponent
from agentforge.workflow.nodes import AgentNode
from agentforge.workflow.spec import WorkflowSpec

__all__ = ["ReflectConfig", "ReflectOptimizer", "ReflectStats", "load_preset"]

log = get_logger(__name__)

PRESET_DIR = "optimizers"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SamplingChoice(_Strict):
    n: int = Field(ge=1, le=16)
    temperature: float = Field(ge=0, le=2)


class ReflectConfig(_Strict):
    """What reflect proposes and how much it shows the model (defaults: ``optimizers/reflect.yaml``)."""

    candidates: int = Field(default=3, ge=1, le=32, description="Candidates returned per call.")
    max_demos: int = Field(default=3, ge=0, le=16, description="Demos a node may hold (a demo option replaces them).")
    demo_options: int = Field(default=2, ge=0, description="Demo sets offered per node.")
    max_demo_chars: int = Field(default=1500, gt=0, description="A longer solved example is not used as a demo.")
    hints: tuple[str, ...] = Field(default=(), description="The generic, task-agnostic instruction hints.")
    hints_per_target: int = Field(default=4, ge=0, description="Menu hints offered per node (drawn by the RNG).")
    lessons_per_target: int = Field(default=2, ge=0, description="Memory lessons offered per node.")
    lesson_chars: int = Field(default=300, gt=0, description="A lesson longer than this is clipped.")
    sampling: tuple[SamplingChoice, ...] = Field(
        default=(SamplingChoice(n=5, temperature=0.7), SamplingChoice(n=1, temperature=0.0)),
        description="Sampling variants offered where a node's answer can be voted on.")
    vote_max_chars: int = Field(default=40, gt=0, description="Text answers up to this long can be voted on.")
    rewrites: int = Field(default=1, ge=0, description="Reflective rewrites asked for (nodes failing most first).")
    max_records: int = Field(default=4, ge=1, description="Failing records shown for a rewrite.")
    record_chars: int = Field(default=400, gt=0, description="Each shown text is clipped to this.")
    max_instruction_chars: int = Field(default=800, gt=0, description="A longer rewrite is rejected.")
    echo_ngram: int = Field(default=6, ge=2, description="A rewrite sharing this many words in a row with an "
                                                         "input shown is an echo, and rejected.")
    summary_failures: int = Field(default=3, ge=0, description="Failure feedback lines shown with the menu.")
    temperature: float = Field(default=0.7, ge=0, le=2, description="The optimizer model's temperature.")
    max_tokens: int = Field(default=400, gt=0, description="Reply cap for the optimizer model.")


class ReflectPreset(_Strict):
    """The preset file: ``version``, ``kind: optimizer``, ``optimizer: reflect`` and its ``config``."""

    version: Literal[1] = 1
    kind: Literal["optimizer"] = "optimizer"
    optimizer: Literal["reflect"] = "reflect"
    description: str = ""
    config: dict[str, Any] = Field(default_factory=dict)


def _preset_path(name: str | Path) -> Path:
    ref = str(name)
    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        return Path(ref)
    folders = [Path(PRESET_DIR), Path(__file__).resolve().parents[2] / PRESET_DIR]
    for folder in folders:
        path = folder / f"{ref}.yaml"
        if path.is_file():
            return path
    raise ConfigError(f"no optimizer preset '{ref}' (looked in {', '.join(str(f) for f in folders)})")


def _config(data: dict[str, Any], where: str) -> ReflectConfig:
    unknown = [k for k in data if k not in ReflectConfig.model_fields]
    if unknown:
        hints = []
        for key in unknown:
            close = get_close_matches(key, list(ReflectConfig.model_fields), n=1)
            hints.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise InputError(f"{where}: unknown reflect setting {', '.join(hints)}")
    try:
        return ReflectConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise InputError(f"{where}: reflect setting '{loc}': {first['msg']}") from None


def load_preset(name: str | Path = "reflect", **overrides: Any) -> ReflectConfig:
    """The config of a preset (``optimizers/<name>.yaml`` here, then beside the package, or a path),
    with ``overrides`` on top; unknown keys are an ``InputError`` with a suggestion."""
    path = _preset_path(name)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read optimizer preset {path}: {exc}") from exc
    data = parse_yaml(text, str(path)).data or {}
    try:
        preset = ReflectPreset.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InputError(f"{path}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    return _config({**preset.config, **overrides}, str(path))


@dataclass
class ReflectStats:
    """What one ``apropose`` call did: menu size by kind, who chose, rewrites rejected and why, options
    dropped. Malformed replies are counted on the ``Allowance`` (and copied here)."""

    menu: Counter[str] = field(default_factory=Counter)
    chosen_by: Literal["model", "rng", "none"] = "none"
    model_choices: int = 0
    rewrites_asked: int = 0
    rewrites_rejected: Counter[str] = field(default_factory=Counter)
    apply_failed: int = 0
    duplicates: int = 0
    calls: int = 0
    malformed: int = 0
    proposed: int = 0


class _Rewrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instruction: str


SYSTEM = "You improve one step of an AI workflow. Reply with one JSON object and nothing else."


class ReflectOptimizer:
    """Menu-driven reflective proposer; see the module docstring."""

    name: ClassVar[str] = "reflect"
    calls_per_proposal: ClassVar[int] = 2  # one choice of options and one checked rewrite

    def __init__(self, *, gateway: Gateway, model: str, rng: random.Random, preset: str | Path = "reflect",
                 **config: Any) -> None:
        self.gateway = gateway
        self.model = model
        self.rng = rng
        self.config = load_preset(preset, **config)
        self.last_stats = ReflectStats()

    async def apropose(self, parent: WorkflowSpec, evidence: Evidence, allowance: Allowance) -> list[Candidate]:
        cfg, stats = self.config, ReflectStats()
        used, malformed = allowance.used, allowance.malformed
        self.last_stats = stats
        solved = {r.task_id for r in evidence.successes()}
        found = targets(parent, evidence)
        menu = self._menu(parent, evidence, found, solved)
        by_failures = sorted(found, key=lambda t: -sum(1 for r in t[1] if not is_success(r, solved)))
        for node, records in by_failures[:cfg.rewrites]:
            if allowance.left < 2:  # keep the last call for the choice, which matters more
                break
            option = await self._rewrite(node, records, solved, allowance, stats)
            if option is not None:
                menu.append(option)
        stats.menu = Counter(o.kind for o in menu)
        candidates: list[Candidate] = []
        if menu:
            order, picked, reason = await self._choose(menu, evidence, allowance, stats)
            candidates = self._apply(parent, menu, order, picked, reason, stats)
        stats.calls, stats.malformed = allowance.used - used, allowance.malformed - malformed
        stats.proposed = len(candidates)
        log.info("reflect.proposed", parent=parent.hash, targets=[n.id for n, _ in found], menu=dict(stats.menu),
                 chosen_by=stats.chosen_by, rewrites_rejected=dict(stats.rewrites_rejected),
                 apply_failed=stats.apply_failed, calls=stats.calls, malformed=stats.malformed,
                 proposed=stats.proposed)
        return candidates

    # -- the menu ----------------------------------------------------------------------------------
    def _menu(self, parent: WorkflowSpec, evidence: Evidence, found: Sequence[tuple[AgentNode, list[ComponentRecord]]],
              solved: set[str]) -> list[Option]:
        cfg = self.config
        lessons = [clip(h.record.text, cfg.lesson_chars) for h in evidence.lessons if h.record.text.strip()]
        variants = [SamplingVariant(s.n, s.temperature) for s in cfg.sampling]
        menu: list[Option] = []
        for node, records in found:
            menu += demo_options(node, records, solved, self.rng, max_demos=cfg.max_demos,
                                 options=cfg.demo_options, max_chars=cfg.max_demo_chars)
            menu += hint_options(node, cfg.hints, lessons, self.rng, hints_per_target=cfg.hints_per_target,
                                 lessons_per_target=cfg.lessons_per_target)
            menu += sampling_options(node, records, parent.defaults.temperature, variants,
                                     vote_max_chars=cfg.vote_max_chars)
        return menu

    async def _rewrite(self, node: AgentNode, records: Sequence[ComponentRecord], solved: set[str],
                       allowance: Allowance, stats: ReflectStats) -> Option | None:
        """One rewritten instruction for ``node`` from its failing runs, or None (nothing failed, no reply,
        or a reply rejected: empty, too long, unchanged, or echoing a shown input)."""
        cfg = self.config
        shown = failing(records, solved, cfg.max_records, self.rng)
        if not shown:
            return None
        base, hint = split_hint(node.instruction)
        stats.rewrites_asked += 1
        reply = await ask_json(self.gateway, self.model, self._rewrite_prompt(node, base, shown), _Rewrite,
                               allowance, rng=self.rng, temperature=cfg.temperature, max_tokens=cfg.max_tokens)
        if reply is None:
            return None
        text = reply.instruction.strip()
        sources = [show(v) for r in shown for v in r.inputs.values()]
        reason = ("empty" if not text else
                  "too_long" if len(text) > cfg.max_instruction_chars else
                  "unchanged" if " ".join(text.split()) == " ".join(base.split()) else
                  "echo" if echoes(text, sources, cfg.echo_ngram) else None)
        if reason is not None:
            stats.rewrites_rejected[reason] += 1
            log.info("reflect.rewrite_rejected", node=node.id, reason=reason, text=clip(text, 200))
            return None
        value = f"{text}\n\n{hint}" if hint else text
        return Option("rewrite", node.id, (SetComponent(name=f"{node.id}.instruction", value=value),),
                      f'[{node.id}] rewrite the instruction as: "{clip(text, 160)}"')

    def _rewrite_prompt(self, node: AgentNode, base: str, shown: Sequence[ComponentRecord]) -> list[Message]:
        limit = self.config.record_chars
        lines = [
            f"A workflow step reads {', '.join(node.input_names()) or 'nothing'} and writes "
            f"{', '.join(node.output_types())}. Its instruction is:",
            f'"""{clip(base, 2 * limit) or "(no instruction)"}"""',
            "",
            "It did not solve these training tasks:",
        ]
        for i, record in enumerate(shown, 1):
            lines.append(f"Example {i}")
            lines += [f"  input {k}: {clip(show(v), limit)}" for k, v in record.inputs.items()]
            lines += [f"  output {k}: {clip(show(v), limit)}" for k, v in record.outputs.items()]
            if record.error:
                lines.append(f"  error: {clip(record.error, limit)}")
            if record.feedback:
                lines.append(f"  feedback: {clip(record.feedback, limit)}")
        lines += [
            "",
            "Rewrite the instruction so the step does better on tasks like these. Give general advice that "
            "helps on every such task; do not copy any example's question or answer. "
            'Reply as JSON: {"instruction": "<the new instruction>"}',
        ]
        return [Message(role="system", content=SYSTEM), Message(role="user", content="\n".join(lines))]

    # -- the choice --------------------------------------------------------------------------------
    async def _choose(self, menu: Sequence[Option], evidence: Evidence, allowance: Allowance,
                      stats: ReflectStats) -> tuple[list[int], set[int], str]:
        """The order to take options in: the model's picks first (when it gives a valid reply), then the
        rest as the RNG interleaves them; also the model's picks and its reason (empty when it did not choose)."""
        k = min(self.config.candidates, len(menu))
        reply_model = create_model(
            "Choice",
            __config__=ConfigDict(extra="forbid"),
            choices=(list[Literal[tuple(range(1, len(menu) + 1))]], Field(min_length=1, max_length=k)),  # type: ignore[valid-type]
            reason=(str, Field(max_length=300)),
        )
        reply = await ask_json(self.gateway, self.model, self._choice_prompt(menu, evidence, k), reply_model,
                               allowance, rng=self.rng, temperature=self.config.temperature,
                               max_tokens=min(self.config.max_tokens, 200))
        fallback = interleave(menu, self.rng)
        if reply is None:
            stats.chosen_by = "rng"
            return fallback, set(), ""
        picked = list(dict.fromkeys(i - 1 for i in reply.choices))  # type: ignore[attr-defined]
        stats.chosen_by, stats.model_choices = "model", len(picked)
        order = picked + [i for i in fallback if i not in picked]
        return order, set(picked), str(reply.reason)  # type: ignore[attr-defined]

    def _choice_prompt(self, menu: Sequence[Option], evidence: Evidence, k: int) -> list[Message]:
        failures = evidence.failures()
        lines = [f"The workflow solved {len(evidence.results) - len(failures)} of {len(evidence.results)} "
                 "training tasks."]
        notes = [clip(r.feedback or (r.failure.message if r.failure else ""), 150) for r in failures]
        notes = [n for n in dict.fromkeys(notes) if n][: self.config.summary_failures]
        if notes:
            lines += ["What went wrong:", *(f"- {n}" for n in notes)]
        lines += ["", "Possible changes (the step's name is in brackets):"]
        lines += [f"{i}. {option.description}" for i, option in enumerate(menu, 1)]
        lines += ["", f"Choose up to {k} changes most likely to solve more tasks, best first. "
                      'Reply as JSON: {"choices": [<numbers>], "reason": "<one sentence>"}']
        return [Message(role="system", content=SYSTEM), Message(role="user", content="\n".join(lines))]

    # -- candidates --------------------------------------------------------------------------------
    def _apply(self, parent: WorkflowSpec, menu: Sequence[Option], order: Sequence[int], picked: set[int],
               reason: str, stats: ReflectStats) -> list[Candidate]:
        out: list[Candidate] = []
        seen = {parent.hash}
        for i in order:
            if len(out) == self.config.candidates:
                break
            option = menu[i]
            why = (f"chosen by the optimizer model: {reason}".rstrip(": ") if i in picked
                   else "drawn from the menu by the RNG")
            change = Change(author=self.name, summary=option.description, rationale=clip(why, 400))
            try:
                spec = parent.apply(option.edits, change)
            except SpecError as exc:
                stats.apply_failed += 1
                log.info("reflect.option_invalid", option=option.description, error=str(exc)[:300])
                continue
            if spec.hash in seen:
                stats.duplicates += 1
                continue
            seen.add(spec.hash)
            out.append(Candidate.of(spec))
        return out
