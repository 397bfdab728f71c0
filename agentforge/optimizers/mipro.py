"""``mipro``: DSPy's MIPROv2 over a workflow's agent nodes, its LM and its trials routed through agentforge.

How the workflow becomes a DSPy program. Each unprotected ``agent`` node is a ``dspy.Predict`` whose
signature has the node's typed input and output fields, its instruction and its demos. The program's
``forward(task_id)`` does not imitate the workflow with DSPy calls: it applies the predictors' current
instructions and demos to the parent spec as typed edits and runs the *real* workflow on that train task
through ``Evidence.scorer``, so every trial MIPRO scores is scored by the environment's own metric, with
the workflow's own prompts, tools and routing. Demo bootstrapping needs DSPy's predictor traces, so the
forward puts each node's recorded (inputs, outputs) from the run's trace onto ``dspy.settings.trace`` as
if that predictor had made the call; ``BootstrapFewShot`` then keeps the traces of tasks that scored at
least ``demo_threshold``, exactly as it would for a native program. Labeled demos come free: a train
example carries, as labels, what each node said on that task when the evidence shows the task solved.

MIPRO itself runs unchanged (``dspy.MIPROv2.compile``: bootstrapped demo sets, grounded instruction
proposals, TPE search over instruction x demo-set per node) in a worker thread; ``_dspy_lm`` sends its
model calls (the optimizer model, through the gateway: one cache) and its trial runs back to the event
loop. Only ``Evidence.train_ids`` ever reach the scorer: they are split, by the RNG, into MIPRO's own
train and val sets. Every model call claims one allowance call, every trial run is charged its LLM calls;
when nothing is left the run unwinds and returns what it found so far, so it overdraws by at most the
runs in flight (``num_threads``, at most one trial's minibatch). A reply DSPy cannot parse is counted on
``allowance.malformed`` and survived.

The result: MIPRO's own pick (its best full evaluation) first, then the other programs it tried, ranked
by their paired gain over the parent on the same MIPRO-val tasks; only programs that gained are returned,
each as ``SetComponent`` edits of ``<node>.instruction`` and ``<node>.demos``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from difflib import get_close_matches
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agentforge._yaml import parse_yaml
from agentforge.errors import ConfigError, InputError
from agentforge.evaluation.report import TaskResult
from agentforge.llm.gateway import Gateway
from agentforge.logs import get_logger
from agentforge.optimizers.base import Allowance, Evidence, TrainScorer
from agentforge.workflow.edits import Candidate, Change, SetComponent
from agentforge.workflow.nodes import AgentNode
from agentforge.workflow.spec import WorkflowSpec
from agentforge.workflow.types import FieldType, parse_type

if TYPE_CHECKING:
    from agentforge.optimizers import _dspy_lm

__all__ = ["MiproConfig", "MiproOptimizer", "MiproStats", "load_preset"]

log = get_logger(__name__)

PRESET_DIR = "optimizers"


class MiproConfig(BaseModel):
    """MIPROv2's settings as agentforge passes them (defaults: ``optimizers/mipro.yaml``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    auto: Literal["light", "medium", "heavy"] | None = Field(
        default=None, description="MIPRO's preset run size; None: num_candidates and num_trials rule.")
    num_candidates: int = Field(default=4, ge=2, le=32, description="Instruction and demo-set candidates per node.")
    num_trials: int = Field(default=6, ge=1, le=500, description="Bayesian-search trials (minibatch evaluations).")
    max_bootstrapped_demos: int = Field(default=2, ge=0, le=16, description="Demos from solved trial traces.")
    max_labeled_demos: int = Field(default=2, ge=0, le=16, description="Demos from solved evidence records.")
    minibatch_size: int = Field(default=8, ge=1, description="Tasks per trial (capped by MIPRO's val set).")
    minibatch_full_eval_steps: int = Field(default=5, ge=1, description="Trials between full val evaluations.")
    max_tasks: int = Field(default=40, ge=2, description="Train tasks MIPRO may use (drawn by the RNG).")
    val_fraction: float = Field(default=0.5, gt=0, lt=1, description="Of those, the share MIPRO validates on.")
    demo_threshold: float = Field(default=1.0, ge=0, le=1, description="A run becomes a demo at this score.")
    num_threads: int = Field(default=2, ge=1, le=32, description="Trial runs at once (each a workflow run).")
    candidates: int = Field(default=2, ge=1, le=16, description="Programs returned per call, best first.")
    temperature: float = Field(default=1.0, ge=0, le=2, description="The proposer's sampling temperature.")
    max_tokens: int = Field(default=600, gt=0, description="Reply cap for the optimizer model.")
    view_data_batch_size: int = Field(default=10, ge=1, description="Examples per dataset-summary call.")
    program_aware: bool = Field(
        default=False, description="Show the proposer the program's source: here that is agentforge's "
                                   "adapter, not the task, so it misleads more than it helps; off.")
    data_aware: bool = Field(default=True, description="Summarise the train examples for the proposer.")
    tip_aware: bool = Field(default=True, description="Give the proposer one of MIPRO's prompting tips.")
    fewshot_aware: bool = Field(default=True, description="Show the proposer bootstrapped demos.")

    @model_validator(mode="after")
    def _demo_counts(self) -> MiproConfig:
        # dspy bootstraps nothing (and fails) with labeled demos but no bootstrapped ones.
        if self.max_bootstrapped_demos == 0 and self.max_labeled_demos > 0:
            raise ValueError("max_labeled_demos needs max_bootstrapped_demos >= 1 (or set both to 0)")
        return self


class MiproPreset(BaseModel):
    """The preset file: ``version``, ``kind: optimizer``, ``optimizer: mipro`` and its ``config``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    kind: Literal["optimizer"] = "optimizer"
    optimizer: Literal["mipro"] = "mipro"
    description: str = ""
    config: dict[str, Any] = Field(default_factory=dict)


def load_preset(name: str | Path = "mipro", **overrides: Any) -> MiproConfig:
    """The config of a preset (``optimizers/<name>.yaml`` here, then beside the package, or a path) with
    ``overrides`` on top; an unknown key is an ``InputError`` with a suggestion."""
    ref = str(name)
    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        path = Path(ref)
    else:
        folders = [Path(PRESET_DIR), Path(__file__).resolve().parents[2] / PRESET_DIR]
        found = [f / f"{ref}.yaml" for f in folders if (f / f"{ref}.yaml").is_file()]
        if not found:
            raise ConfigError(f"no optimizer preset '{ref}' (looked in {', '.join(str(f) for f in folders)})")
        path = found[0]
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"), str(path)).data or {}
    except OSError as exc:
        raise ConfigError(f"cannot read optimizer preset {path}: {exc}") from exc
    try:
        preset = MiproPreset.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InputError(f"{path}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    values = {**preset.config, **overrides}
    unknown = [k for k in values if k not in MiproConfig.model_fields]
    if unknown:
        hints = [f"'{k}'" + (f" (did you mean '{c[0]}'?)" if (c := get_close_matches(k, list(MiproConfig.model_fields),
                                                                                      n=1)) else "")
                 for k in unknown]
        raise InputError(f"{path}: unknown mipro setting {', '.join(hints)}")
    try:
        return MiproConfig.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InputError(f"{path}: mipro setting '{'.'.join(str(p) for p in first['loc'])}': {first['msg']}") from None


@dataclass
class MiproStats:
    """What one ``apropose`` call did (malformed replies are counted on the ``Allowance``, copied here)."""

    why_none: str | None = None
    stopped: Literal["finished", "allowance", "none"] = "none"
    lm_calls: int = 0
    runs: int = 0
    run_calls: int = 0
    specs_tried: int = 0
    malformed: int = 0
    train_ids: tuple[str, ...] = ()
    val_ids: tuple[str, ...] = ()
    proposed: int = 0


@dataclass(frozen=True)
class _Node:
    """One optimised agent node: its ports, whether it takes demos, and its instruction as DSPy shows it."""

    id: str
    instruction: str
    demos: tuple[dict[str, Any], ...]
    inputs: tuple[tuple[str, FieldType], ...]
    outputs: tuple[tuple[str, FieldType], ...]
    with_demos: bool
    shown_instruction: str = ""  # DSPy's rendering of the unchanged instruction (its default when empty)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.inputs) + tuple(n for n, _ in self.outputs)


@dataclass
class _Tried:
    spec: WorkflowSpec
    edits: tuple[SetComponent, ...]
    scores: dict[str, float] = field(default_factory=dict)


class _Trials:
    """MIPRO's runs of the workflow: predictors -> edits -> spec, each (spec, task) scored once, charged."""

    def __init__(self, parent: WorkflowSpec, nodes: Sequence[_Node], scorer: TrainScorer, allowance: Allowance,
                 allowed: set[str], bridge: _dspy_lm.Bridge) -> None:
        self.parent = parent
        self.nodes = {n.id: n for n in nodes}
        self.scorer = scorer
        self.allowance = allowance
        self.allowed = allowed
        self.bridge = bridge
        self.tried: dict[str, _Tried] = {parent.hash: _Tried(parent, ())}
        self.runs = 0
        self.run_calls = 0
        self._specs: dict[str, WorkflowSpec] = {}
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], asyncio.Future[TaskResult]] = {}

    # -- predictors to edits (any thread) --------------------------------------------------------
    def edits(self, predictors: dict[str, Any]) -> tuple[SetComponent, ...]:
        out: list[SetComponent] = []
        for node_id, predictor in predictors.items():
            node = self.nodes[node_id]
            text = predictor.signature.instructions
            if text == node.shown_instruction:
                text = node.instruction
            if text.strip() and text != node.instruction:
                out.append(SetComponent(name=f"{node_id}.instruction", value=text))
            if node.with_demos:
                demos = demos_of(node, predictor.demos)
                if tuple(demos) != node.demos:
                    out.append(SetComponent(name=f"{node_id}.demos", value=demos))
        return tuple(out)

    def spec(self, edits: tuple[SetComponent, ...]) -> WorkflowSpec:
        if not edits:
            return self.parent
        key = json.dumps([e.model_dump(mode="json") for e in edits], sort_keys=True)
        with self._lock:
            spec = self._specs.get(key)
        if spec is None:
            spec = self.parent.apply(edits, Change(author="mipro", summary="a MIPRO trial program"))
            with self._lock:
                self._specs[key] = spec
                self.tried.setdefault(spec.hash, _Tried(spec, edits))
        return spec

    # -- one task (called from dspy's threads) ---------------------------------------------------
    def run(self, predictors: dict[str, Any], task_id: str) -> tuple[float, dict[str, list[tuple[dict[str, Any],
                                                                                             dict[str, Any]]]]]:
        spec = self.spec(self.edits(predictors))
        result = self.bridge.call(self._score(spec, task_id))
        records: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
        for step in result.traces:
            for trace in step.nodes:
                node = self.nodes.get(trace.node)
                if node is None or trace.error:
                    continue
                inputs = {n: trace.inputs[n] for n, _ in node.inputs if n in trace.inputs}
                outputs = {n: trace.outputs[n] for n, _ in node.outputs if n in trace.outputs}
                if len(inputs) == len(node.inputs) and len(outputs) == len(node.outputs):
                    records.setdefault(node.id, []).append((inputs, outputs))
        return result.score, records

    async def _score(self, spec: WorkflowSpec, task_id: str) -> TaskResult:
        if task_id not in self.allowed:  # examples hold train ids only; this guards that promise
            raise InputError(f"mipro was about to score task '{task_id}', which is not a train task")
        key = (spec.hash, task_id)
        pending = self._pending.get(key)
        if pending is None:
            if self.allowance.left <= 0:
                from agentforge.optimizers._dspy_lm import Spent

                raise Spent
            pending = self._pending[key] = asyncio.ensure_future(self._fresh(spec, task_id))
        return await asyncio.shield(pending)

    async def _fresh(self, spec: WorkflowSpec, task_id: str) -> TaskResult:
        results = await self.scorer.ascore(spec, [task_id])
        calls = sum(r.llm_calls for r in results)
        self.allowance.charge(calls)
        self.runs += 1
        self.run_calls += calls
        result = next((r for r in results if r.task_id == task_id), None)
        if result is None:
            raise InputError(f"the train scorer returned no result for task '{task_id}'")
        self.tried[spec.hash].scores[task_id] = result.score
        return result

    # -- ranking ---------------------------------------------------------------------------------
    def gain(self, spec_hash: str, over: Sequence[str]) -> tuple[float, int]:
        """Mean score gain over the parent on the tasks in ``over`` both were scored on, and how many."""
        mine, base = self.tried[spec_hash].scores, self.tried[self.parent.hash].scores
        shared = [t for t in over if t in mine and t in base]
        if not shared:
            return 0.0, 0
        return sum(mine[t] - base[t] for t in shared) / len(shared), len(shared)


def demos_of(node: _Node, demos: Sequence[Any]) -> list[dict[str, Any]]:
    """DSPy demos as agentforge demos: those holding every input and output of the node, each once."""
    out: list[dict[str, Any]] = []
    for demo in demos:
        keys = set(demo.keys())
        if not all(name in keys for name in node.names):
            continue
        item = {"inputs": {n: demo[n] for n, _ in node.inputs}, "outputs": {n: demo[n] for n, _ in node.outputs}}
        if item not in out:
            out.append(item)
    return out


class MiproOptimizer:
    """DSPy's MIPROv2 over the unprotected agent nodes (see the module docstring)."""

    name: ClassVar[str] = "mipro"
    calls_per_proposal: ClassVar[int] = 40  # instruction proposals plus a few scored trials

    def __init__(self, *, gateway: Gateway, model: str, rng: random.Random, preset: str | Path = "mipro",
                 **config: Any) -> None:
        self.gateway = gateway
        self.model = model
        self.rng = rng
        self.config = load_preset(preset, **config)
        self.last_stats = MiproStats()

    async def apropose(self, parent: WorkflowSpec, evidence: Evidence, allowance: Allowance) -> list[Candidate]:
        cfg = self.config
        stats = self.last_stats = MiproStats()
        nodes = _nodes(parent)
        train = list(dict.fromkeys(evidence.train_ids))
        if not nodes:
            return self._none(stats, "no unprotected agent node to optimise")
        if evidence.scorer is None:
            return self._none(stats, "the evidence offers no train scorer, and MIPRO searches by trying")
        if len(train) < 2:
            return self._none(stats, f"MIPRO needs at least 2 train tasks, the evidence offers {len(train)}")
        if allowance.left <= 0:
            return self._none(stats, "the allowance has no call left")
        # Every draw from the RNG happens here, in one order, so the same seed gives the same run.
        self.rng.shuffle(train)
        train = train[:cfg.max_tasks]
        n_val = min(len(train) - 1, max(1, round(len(train) * cfg.val_fraction)))
        mipro_train, mipro_val = train[n_val:], train[:n_val]
        mipro_seed, lm_seed = self.rng.randrange(1, 2**31), self.rng.randrange(2**31)
        stats.train_ids, stats.val_ids = tuple(mipro_train), tuple(mipro_val)

        from agentforge.optimizers import _dspy_lm as d

        d.require_optuna()  # MIPRO imports it only for its search, after bootstrapping and proposing
        d.disable_dspy_cache()
        nodes = [replace(n, shown_instruction=d.make_signature(n.id, n.inputs, n.outputs, n.instruction).instructions)
                 for n in nodes]
        bridge = d.Bridge(asyncio.get_running_loop())
        trials = _Trials(parent, nodes, evidence.scorer, allowance, set(train), bridge)
        engine = d.GatewayEngine(bridge, self.gateway, self.model, take=allowance.take, seed=lm_seed,
                                 temperature=cfg.temperature, max_tokens=cfg.max_tokens)
        malformed_before = allowance.malformed

        def count_malformed() -> None:
            def bump() -> None:
                allowance.malformed += 1
            bridge.soon(bump)

        adapter = d.CountingAdapter(count_malformed)
        labels = _labels(evidence, nodes, cfg.demo_threshold, set(train))
        inputs = {r.task_id: r.inputs for r in evidence.results}
        examples = {tid: _example(tid, inputs.get(tid, {}), labels.get(tid, {})) for tid in train}
        log.info("mipro.start", nodes=[n.id for n in nodes], train=len(mipro_train), val=len(mipro_val),
                 allowance=allowance.left)
        try:
            best = await asyncio.to_thread(self._compile, d, nodes, trials, engine, adapter,
                                           [examples[t] for t in mipro_train], [examples[t] for t in mipro_val],
                                           mipro_seed)
        except asyncio.CancelledError:
            bridge.halt()  # the thread stops at its next model call or run
            raise
        stats.lm_calls, stats.runs, stats.run_calls = engine.calls, trials.runs, trials.run_calls
        stats.specs_tried = len(trials.tried) - 1
        stats.malformed = allowance.malformed - malformed_before
        if bridge.failure is not None:
            raise bridge.failure
        stats.stopped = "allowance" if bridge.spent else "finished"
        out = self._candidates(parent, trials, best, mipro_val, stats)
        stats.proposed = len(out)
        if not out and stats.why_none is None:
            stats.why_none = ("no program MIPRO tried gained over the parent on its val tasks"
                              + (" before the allowance ran out" if bridge.spent else ""))
        log.info("mipro.done", stopped=stats.stopped, candidates=len(out), lm_calls=stats.lm_calls,
                 runs=stats.runs, run_calls=stats.run_calls, specs=stats.specs_tried, malformed=stats.malformed,
                 why_none=stats.why_none)
        return out

    def _compile(self, d: Any, nodes: Sequence[_Node], trials: _Trials, engine: Any, adapter: Any,
                 trainset: list[Any], valset: list[Any], seed: int) -> Any:
        """MIPROv2.compile in this worker thread; None when it unwound (allowance spent, or a failure)."""
        import dspy

        cfg = self.config
        lm = d.make_lm(engine)
        # trace=None: only bootstrapping (which opens its own trace) records predictor calls; otherwise they
        # would pile up in dspy's process-wide default trace list.
        with d.muted(), dspy.context(lm=lm, adapter=adapter, disable_history=True, trace=None):
            program = d.WorkflowProgram({n.id: _predictor(d, n) for n in nodes}, trials.run)
            minibatch_size = min(cfg.minibatch_size, len(valset))
            teleprompter = dspy.MIPROv2(
                metric=_metric, prompt_model=lm, task_model=lm, auto=cfg.auto,
                num_candidates=None if cfg.auto else cfg.num_candidates,
                max_bootstrapped_demos=cfg.max_bootstrapped_demos, max_labeled_demos=cfg.max_labeled_demos,
                num_threads=cfg.num_threads, seed=seed, init_temperature=cfg.temperature,
                metric_threshold=cfg.demo_threshold, verbose=False, track_stats=True)
            best = None
            with contextlib.suppress(d.Unwind):  # spent, or a failure kept on the bridge
                best = teleprompter.compile(
                    program, trainset=trainset, valset=valset, num_trials=None if cfg.auto else cfg.num_trials,
                    minibatch=minibatch_size < len(valset), minibatch_size=minibatch_size,
                    minibatch_full_eval_steps=cfg.minibatch_full_eval_steps,
                    program_aware_proposer=cfg.program_aware, data_aware_proposer=cfg.data_aware,
                    tip_aware_proposer=cfg.tip_aware, fewshot_aware_proposer=cfg.fewshot_aware,
                    view_data_batch_size=cfg.view_data_batch_size)
            # An unwound run leaves progress bars in reference cycles; closing them prints, so collect
            # them here, while this thread's output is still muted.
            gc.collect()
            return best

    def _candidates(self, parent: WorkflowSpec, trials: _Trials, best: Any, val: Sequence[str],
                    stats: MiproStats) -> list[Candidate]:
        order: list[tuple[str, str]] = []  # (spec hash, who chose it)
        if best is not None:
            spec = trials.spec(trials.edits(best.nodes))
            if spec.hash != parent.hash:
                order.append((spec.hash, "MIPRO's pick (best full evaluation on its val tasks)"))
        ranked = sorted((h for h in trials.tried if h != parent.hash),
                        key=lambda h: trials.gain(h, val), reverse=True)
        order += [(h, "tried by MIPRO") for h in ranked if h not in {o for o, _ in order}]
        out: list[Candidate] = []
        for spec_hash, who in order:
            gain, n = trials.gain(spec_hash, val)
            if n == 0 or gain <= 0:
                continue
            tried = trials.tried[spec_hash]
            touched = sorted({e.name for e in tried.edits})
            change = Change(author="mipro", summary=f"MIPRO: {', '.join(touched)}",
                            rationale=f"{who}; mean score {gain:+.3f} over the parent on the {n} MIPRO-val "
                                      f"task(s) both ran (train split)")
            out.append(Candidate.of(parent.apply(tried.edits, change)))
            if len(out) >= self.config.candidates:
                break
        return out

    @staticmethod
    def _none(stats: MiproStats, why: str) -> list[Candidate]:
        stats.why_none = why
        log.info("mipro.none", why=why)
        return []


# -- helpers ---------------------------------------------------------------------------------------
def _nodes(spec: WorkflowSpec) -> list[_Node]:
    out = []
    for node in spec.nodes:
        if not isinstance(node, AgentNode) or node.protected:
            continue
        inputs = tuple((name, _input_type(spec, node, name)) for name in node.input_names())
        out.append(_Node(id=node.id, instruction=node.instruction,
                         demos=tuple(d.model_dump(mode="json") for d in node.demos), inputs=inputs,
                         outputs=tuple(node.output_types().items()), with_demos=not node.tools))
    return out


def _input_type(spec: WorkflowSpec, node: AgentNode, name: str) -> FieldType:
    """A bare input name takes the type of the workflow input or the node output of that name (else str)."""
    declared = node.declared_input_types()
    if name in declared:
        return declared[name]
    if name in spec.input_types():
        return spec.input_types()[name]
    for other in spec.nodes:
        if other.id != node.id and name in other.output_types():
            return other.output_types()[name]
    return parse_type("str")


def _predictor(d: Any, node: _Node) -> Any:
    import dspy

    signature = d.make_signature(node.id, node.inputs, node.outputs, node.instruction)
    predictor = dspy.Predict(signature)
    predictor.demos = [dspy.Example(**demo["inputs"], **demo["outputs"]) for demo in node.demos]
    return predictor


def _metric(example: Any, prediction: Any, trace: Any = None) -> float:
    return float(prediction.score)


def _example(task_id: str, inputs: dict[str, Any], labels: dict[str, Any]) -> Any:
    import dspy

    fields = {k: v for k, v in {**inputs, **labels}.items() if k != "task_id"}
    return dspy.Example(task_id=task_id, **fields).with_inputs("task_id")


def _labels(evidence: Evidence, nodes: Sequence[_Node], threshold: float,
            allowed: set[str]) -> dict[str, dict[str, Any]]:
    """Per solved train task, what each node said on it (a name two nodes disagree on is left out)."""
    out: dict[str, dict[str, Any]] = {}
    clashes: dict[str, set[str]] = {}
    for node in nodes:
        if not node.with_demos:
            continue
        for record in evidence.records(node.id):
            if record.task_id not in allowed or record.score < threshold or record.error:
                continue
            values = {n: record.inputs.get(n) for n, _ in node.inputs} | {n: record.outputs.get(n)
                                                                           for n, _ in node.outputs}
            if any(v is None for v in values.values()):
                continue
            mine = out.setdefault(record.task_id, {})
            for name, value in values.items():
                if name in mine and mine[name] != value:
                    clashes.setdefault(record.task_id, set()).add(name)
                mine.setdefault(name, value)
    for task_id, names in clashes.items():
        for name in names:
            out[task_id].pop(name, None)
    return out
