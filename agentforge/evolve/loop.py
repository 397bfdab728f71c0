"""The evolve loop: seed on val, then generations of select -> evidence -> propose -> novelty -> gate ->
minibatch -> val -> paired acceptance -> record, then the best on val scored once on test.

Only this module writes run state (through ``RunStore``) and experience (through the memory store).
Every random choice draws from generators seeded from the run's seed, evaluations already stored are
read back instead of run, and optimizer calls are cached by the gateway: a resumed run replays the
loop from the start and arrives where an uninterrupted run would, without repeating a model call.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any

from agentforge.config import Settings, get_settings
from agentforge.envs.base import Environment, Task
from agentforge.errors import AgentforgeError, BudgetExceeded, InputError, RunFolderError, SafetyViolation
from agentforge.evaluation.comparison import PairedComparison, compare_paired
from agentforge.evaluation.evaluator import aevaluate
from agentforge.evaluation.report import TaskResult
from agentforge.evolve.budget import Ledger, Spend
from agentforge.evolve.config import EvolveConfig, Role
from agentforge.evolve.events import (
    BudgetUpdate,
    CandidateAccepted,
    CandidateProposed,
    CandidateRejected,
    Event,
    GenerationStarted,
    Preflight,
    ProposalFailed,
    RunFinished,
    RunStarted,
    SeedScored,
)
from agentforge.evolve.novelty import Novelty
from agentforge.evolve.selector import make_selector
from agentforge.evolve.splits import Splits, TaskGuard
from agentforge.evolve.store import RunStore
from agentforge.llm.gateway import Gateway, sampling_round
from agentforge.logs import get_logger
from agentforge.memory.base import Experience, Hit, MemoryStore, Provenance
from agentforge.optimizers.base import Allowance, Evidence, Optimizer
from agentforge.optimizers.registry import optimizer_class
from agentforge.runtime.workflow import Workflow
from agentforge.safety.base import GateEvidence, Verdict, example_text
from agentforge.safety.gate import GateConfig, default_gate
from agentforge.workflow.loader import spec_from_text, spec_to_yaml
from agentforge.workflow.spec import Candidate, WorkflowSpec

log = get_logger(__name__)

OnEvent = Callable[[Event], None]
STOP_FILE = "STOP"


@dataclass
class EvolveResult:
    run_id: str
    folder: Path
    seed: WorkflowSpec
    best: WorkflowSpec
    seed_val: float
    best_val: float
    seed_test: float
    best_test: float
    test_comparison: PairedComparison
    stop_reason: str
    generations: int
    pool: list[str]
    rejected: dict[str, int]
    accepted: int
    malformed: int
    spent: dict[str, Any]
    events: int = 0
    new_calls: int = 0  # model calls this session really made (neither stored nor cached): 0 on a replay


    def describe(self) -> str:
        c = self.test_comparison
        return (f"seed {self.seed_test:.3f} -> best {self.best_test:.3f} on {c.n} held-out test tasks "
                f"({c.describe()}); stopped: {self.stop_reason}")


def new_run_id() -> str:
    return "evolve-" + time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def _derive(seed: int, *parts: object) -> random.Random:
    digest = hashlib.sha256(json.dumps([seed, *[str(p) for p in parts]]).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def samples(spec: WorkflowSpec) -> bool:
    """Whether the workflow draws samples (some call at temperature > 0), so scores vary run to run."""
    if (spec.defaults.temperature or 0) > 0:
        return True
    return any(c.kind == "sampling" and c.name.endswith(".temperature") and (c.value or 0) > 0
               for c in spec.components())


def _task_text(task: Task) -> str:
    return "\n".join(f"{k}: {v}" for k, v in task.inputs.items())


def _answer_text(task: Task) -> str:
    a = task.answer
    return a if isinstance(a, str) else json.dumps(a, ensure_ascii=False, default=str)


@dataclass
class _Scores:
    """A spec's results on some tasks: per task id, one result per repeat."""

    by_task: dict[str, list[TaskResult]] = field(default_factory=dict)

    def mean(self) -> float:
        per = self.per_task()
        return fmean(per.values()) if per else 0.0

    def per_task(self) -> dict[str, float]:
        return {t: fmean(r.score for r in rs) for t, rs in self.by_task.items()}

    def lists(self) -> dict[str, list[float]]:
        return {t: [r.score for r in rs] for t, rs in self.by_task.items()}

    def first(self) -> list[TaskResult]:
        return [rs[0] for rs in self.by_task.values()]

    def cost(self) -> float:
        results = [r for rs in self.by_task.values() for r in rs]
        return fmean(r.cost + r.cached_cost for r in results) if results else 0.0


class Evolution:
    """One evolve run: the loop and its state. Use :func:`aevolve`."""

    def __init__(self, seed: WorkflowSpec, env: Environment, config: EvolveConfig, *, folder: Path, store: RunStore,
                 run_id: str, settings: Settings, memory: MemoryStore | None, on_event: OnEvent | None,
                 resumed: bool, env_ref: str | None) -> None:
        self.seed = seed
        self.env = env
        self.config = config
        self.folder = folder
        self.store = store
        self.run_id = run_id
        self.settings = settings
        self.memory = memory
        self.on_event = on_event
        self.resumed = resumed
        self.env_ref = env_ref
        self.gateway = Gateway(settings)
        self.optimizer_gateway = Gateway(settings, cache=self.gateway.cache)
        self.ledger = Ledger(config.budget)
        self.splits = Splits.of(env, config.splits)
        self.guard = TaskGuard.of(self.splits)
        self.selector = make_selector(config.selector, config.selector_uniform)
        self.novelty = Novelty(config.novelty_distance)
        self.novelty.remember(seed.hash)
        self.gate = default_gate(GateConfig.model_validate(config.gate))
        self.gate_evidence = GateEvidence(
            answers={s: tuple(_answer_text(t) for t in getattr(self.splits, s)) for s in ("train", "val", "test")},
            examples={s: tuple(example_text(t.inputs) for t in getattr(self.splits, s))
                      for s in ("train", "val", "test")})
        self.optimizers: list[Optimizer] = []
        for i, name in enumerate(config.optimizers):
            cls = optimizer_class(name)
            options = config.optimizer_options.get(name, {})
            self.optimizers.append(cls(gateway=self.optimizer_gateway, model=config.optimizer_model,  # type: ignore[call-arg]
                                       rng=_derive(config.seed, "optimizer", i, name), **options))
        self.workflows: dict[str, Workflow] = {}
        self.specs: dict[str, WorkflowSpec] = {seed.hash: seed}
        self.charged: set[tuple[str, str, int]] = set()
        self.seq = 0
        self.started = time.time()
        self.clock = time.perf_counter()
        self.ledger.seconds_before = store.seconds_before(self.started)
        self.rejected: Counter[str] = Counter()
        self.accepted = 0
        self.malformed = 0
        self.out_of_budget: str | None = None

    # -- events and time --------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        self.seq += 1
        self.store.put_event(self.seq, event)
        if self.on_event is not None:
            self.on_event(event)

    def new_calls(self) -> int:
        return sum(g.stats.calls - g.stats.cache_hits for g in (self.gateway, self.optimizer_gateway))

    def elapsed(self) -> float:
        return time.perf_counter() - self.clock

    def _save_session(self) -> None:
        self.store.add_session(self.started, self.elapsed())

    # -- evaluation -------------------------------------------------------------------------------
    def workflow(self, spec: WorkflowSpec) -> Workflow:
        found = self.workflows.get(spec.hash)
        if found is None:
            found = self.workflows[spec.hash] = Workflow(spec, settings=self.settings, gateway=self.gateway)
        return found

    def repeats(self, spec: WorkflowSpec) -> int:
        return self.config.repeats if samples(spec) else 1

    async def score(self, spec: WorkflowSpec, task_ids: Sequence[str], *, role: Role = "executor") -> _Scores:
        """Results of ``spec`` on ``task_ids`` (every repeat): read from the store, or run and stored."""
        out = _Scores({t: [] for t in task_ids})
        for repeat in range(self.repeats(spec)):
            have = self.store.results(spec.hash, task_ids, repeat)
            missing = [t for t in task_ids if t not in have]
            if missing:
                def keep(result: TaskResult, repeat: int = repeat, have: dict[str, TaskResult] = have) -> None:
                    self.store.put_result(spec.hash, repeat, result)
                    have[result.task_id] = result

                started = time.perf_counter()
                with sampling_round(repeat):
                    await aevaluate(self.workflow(spec), self.env, task_ids=missing, split=None,
                                    concurrency=self.config.concurrency, model=self.config.model, seed=self.config.seed,
                                    env_ref=self.env_ref, on_result=keep)
                self.ledger.charge(role, Spend(seconds=time.perf_counter() - started))
            fresh = []
            for t in task_ids:
                out.by_task[t].append(have[t])
                key = (spec.hash, t, repeat)
                if key not in self.charged:
                    self.charged.add(key)
                    fresh.append(have[t])
            self.ledger.charge(role, Spend.of_results(fresh))
        return out

    def allowance_for(self, optimizer: Optimizer) -> int:
        configured = self.config.budget.calls_per_proposal
        return configured if configured is not None else getattr(optimizer, "calls_per_proposal", 8)

    # -- preflight --------------------------------------------------------------------------------
    async def preflight(self) -> tuple[float, float]:
        """Time a short probe (the seed on two train tasks), estimate what a candidate costs, and refuse a
        budget that cannot pay for the seed's evaluations and one candidate. Returns (calls per task,
        seconds per task)."""
        warm, *probe_ids = list(self.splits.ids("train")[:3])
        await self.score(self.seed, [warm])  # start-up (compiling, loading the model) is not per-task time
        started = time.perf_counter()
        probe = await self.score(self.seed, probe_ids)
        seconds = (time.perf_counter() - started) / max(1, len(probe_ids))
        results = [r for rs in probe.by_task.values() for r in rs]
        calls_per_task = max(1.0, fmean(r.llm_calls for r in results) if results else 1.0)
        fresh = sum(r.llm_calls - r.cached_calls for r in results)
        seconds_per_call = seconds * len(probe_ids) / max(1, fresh) if fresh else 0.0
        reps = self.repeats(self.seed)
        n_val, n_test, mb = len(self.splits.val), len(self.splits.test), min(self.config.minibatch,
                                                                            len(self.splits.train))
        seed_cost = calls_per_task * reps * (n_val + 2 * n_test + mb)
        proposals = sum(self.allowance_for(o) for o in self.optimizers)
        per_candidate = calls_per_task * reps * (mb + n_val) + proposals / max(
            1, self.config.candidates_per_generation * len(self.optimizers))
        left = self.ledger.calls_left("executor")
        affordable = None if left == float("inf") else max(0.0, (left - seed_cost) / per_candidate)
        minutes = None
        gens = self.config.budget.generations
        planned = seed_cost + gens * self.config.candidates_per_generation * per_candidate
        if affordable is not None:
            planned = min(planned, left)
        if seconds_per_call:
            minutes = planned * seconds_per_call / 60
        text = (f"{calls_per_task:.1f} calls per task, {per_candidate:.0f} calls per candidate (minibatch {mb} + "
                f"val {n_val}{f' x {reps} repeats' if reps > 1 else ''}), seed evaluations {seed_cost:.0f} calls; "
                + (f"budget affords about {affordable:.1f} candidates; " if affordable is not None else "")
                + (f"expected about {minutes:.1f} min at {seconds_per_call:.2f} s per fresh call"
                   if minutes is not None else "timing probe was answered from cache"))
        self.emit(Preflight(calls_per_task=calls_per_task, seconds_per_call=seconds_per_call,
                            calls_per_candidate=per_candidate, candidates_affordable=affordable,
                            expected_minutes=minutes, text=text))
        if affordable is not None and affordable < 1:
            raise BudgetExceeded(
                f"the budget cannot evaluate even one candidate: the seed's evaluations need about {seed_cost:.0f} "
                f"calls and a candidate about {per_candidate:.0f}, but {left:.0f} calls are allowed. Raise "
                "--budget calls=..., or shrink the splits (--val N, --minibatch N)",
                needed=int(seed_cost + per_candidate))
        return calls_per_task, seconds

    # -- evidence and memory ----------------------------------------------------------------------
    def evidence(self, generation: int, results: list[TaskResult]) -> Evidence:
        ids = [r.task_id for r in results]
        key = f"evidence:{generation}"
        snap = self.store.snapshot(key)
        if snap is None:
            experience: list[Hit] = []
            lessons: list[Hit] = []
            if self.memory is not None:
                text = "\n\n".join(_task_text(t) for t in self.splits.train if t.id in set(ids))[:2000]
                where = {"env": self.env.name}
                experience = [h for h in self.memory.best_for(text, k=5, where=where)
                              if self._train_only(h)]
                lessons = [h for h in self.memory.lessons_for(text, k=5, where=where) if self._train_only(h)]
            snap = {"experience": [h.model_dump(mode="json") for h in experience],
                    "lessons": [h.model_dump(mode="json") for h in lessons]}
            self.store.put_snapshot(key, snap)
        train = self.splits.ids("train")
        return Evidence(env=self.env.name, instruction=self.env.instruction, results=tuple(results),
                        experience=tuple(Hit.model_validate(h) for h in snap["experience"]),
                        lessons=tuple(Hit.model_validate(h) for h in snap["lessons"]),
                        generation=generation, train_ids=train, scorer=_TrainScorer(self))

    def _train_only(self, hit: Hit) -> bool:
        """Experience from another run of this env may rest on tasks that are held out here: drop it."""
        ids = [hit.record.task_id, *hit.record.provenance.source_task_ids]
        return all(i is None or i in self.guard.train_ids for i in ids)

    def remember(self, generation: int, spec: WorkflowSpec, results: list[TaskResult], optimizer: str) -> None:
        if self.memory is None or self.store.snapshot(f"remembered:{generation}:{spec.hash}") is not None:
            return
        by_id = {t.id: t for t in self.splits.train}
        records = []
        for r in results:
            task = by_id.get(r.task_id)
            if task is None:  # only train experience is ever written
                continue
            records.append(Experience(
                kind="attempt", text=_task_text(task), env=self.env.name, family=self.env.name, task_id=r.task_id,
                spec_hash=spec.hash, score=r.score, cost=r.cost, tokens=r.prompt_tokens + r.completion_tokens,
                latency_s=r.latency_s, trajectory=_trajectory(r), failure=r.failure.code if r.failure else None,
                feedback=r.feedback, provenance=Provenance(run=self.run_id, generation=generation, optimizer=optimizer,
                                                           source_task_ids=(r.task_id,))))
        self.memory.add(records)
        self.store.put_snapshot(f"remembered:{generation}:{spec.hash}", len(records))

    def learn(self, generation: int, candidate: Candidate, gain: PairedComparison, mb_ids: Sequence[str]) -> None:
        """An accepted change becomes a lesson for this task family: what changed, and what it measured."""
        if self.memory is None or self.store.snapshot(f"lesson:{candidate.spec.hash}") is not None:
            return
        summary = candidate.change.summary or ", ".join(candidate.change.targets())
        text = (f"{summary} (changed {', '.join(candidate.change.targets())}; val {gain.mean_diff:+.3f}, "
                f"{gain.wins} better, {gain.losses} worse)")
        self.memory.add([Experience(kind="lesson", text=text, env=self.env.name, family=self.env.name,
                                    spec_hash=candidate.spec.hash,
                                    provenance=Provenance(run=self.run_id, generation=generation,
                                                          optimizer=candidate.change.author,
                                                          source_task_ids=tuple(mb_ids)))])
        self.store.put_snapshot(f"lesson:{candidate.spec.hash}", text)

    # -- the loop ---------------------------------------------------------------------------------
    async def run(self) -> EvolveResult:
        cfg = self.config
        self.emit(RunStarted(run_id=self.run_id, folder=str(self.folder), resumed=self.resumed,
                             splits={s: len(getattr(self.splits, s)) for s in ("train", "val", "test")}))
        try:
            await self.preflight()
            return await self._run(cfg)
        finally:
            self._save_session()

    async def _run(self, cfg: EvolveConfig) -> EvolveResult:
        val_ids = self.splits.ids("val")
        seed_val = await self.score(self.seed, val_ids)
        self.emit(SeedScored(spec_hash=self.seed.hash, split="val", score=seed_val.mean()))
        self._record(self.seed, None, 0, "seed", status="pool", val=seed_val.mean(), cost=seed_val.cost())
        pool: dict[str, _Scores] = {self.seed.hash: seed_val}
        select_rng = _derive(cfg.seed, "select")
        batch_rng = _derive(cfg.seed, "minibatch")
        accept_rng = _derive(cfg.seed, "accept")
        stale = 0
        stop = ""
        generation = 0
        while True:
            if generation >= cfg.budget.generations:
                stop = f"finished {generation} generations"
                break
            why = self.ledger.exhausted(seconds=self.elapsed()) or self.out_of_budget
            if why:
                stop = f"budget: {why}"
                break
            if (self.folder / STOP_FILE).exists():
                stop = f"stop file {self.folder / STOP_FILE}"
                break
            if stale >= cfg.patience:
                stop = f"converged: no candidate beyond noise for {stale} generations"
                break
            generation += 1
            parent_hash = self.selector.select({h: s.per_task() for h, s in pool.items()}, select_rng)
            parent = self.specs[parent_hash]
            train = list(self.splits.ids("train"))
            mb_ids = batch_rng.sample(train, min(cfg.minibatch, len(train)))
            self.emit(GenerationStarted(generation=generation, parent=parent_hash,
                                        parent_score=pool[parent_hash].mean(), minibatch=tuple(mb_ids)))
            parent_mb = await self.score(parent, mb_ids)
            self.remember(generation, parent, parent_mb.first(), "parent")
            candidates = await self.propose(generation, parent, parent_mb.first())
            accepted_here = 0
            for optimizer_name, candidate in candidates:
                outcome = await self.consider(generation, parent, parent_mb, pool, candidate, optimizer_name,
                                              mb_ids, accept_rng)
                accepted_here += outcome
                if self.ledger.exhausted(seconds=self.elapsed()) or self.out_of_budget:
                    break
            self.emit(BudgetUpdate(generation=generation, spent=self.ledger.report(seconds=self.elapsed())))
            self._save_session()  # so a killed run still counts this session's time on resume
            stale = 0 if accepted_here else stale + 1
        return await self.finish(pool, seed_val, stop, generation)

    async def propose(self, generation: int, parent: WorkflowSpec,
                      results: list[TaskResult]) -> list[tuple[str, Candidate]]:
        out: list[tuple[str, Candidate]] = []
        evidence = self.evidence(generation, results)
        for optimizer in self.optimizers:
            self.guard.show(optimizer.name, list(evidence.task_ids()))
            left = self.ledger.calls_left("optimizer")
            allowance = Allowance(calls=int(min(self.allowance_for(optimizer), max(0, left))))
            stats = self.optimizer_gateway.stats
            before = (stats.calls, stats.cache_hits, stats.prompt_tokens + stats.completion_tokens, stats.cost)
            started = time.perf_counter()
            try:
                proposed = await optimizer.apropose(parent, evidence, allowance)
            except (SafetyViolation, BudgetExceeded):
                raise
            except AgentforgeError as exc:  # one optimizer's failure costs its proposals, not the run
                log.warning("evolve.proposal_failed", optimizer=optimizer.name, error=str(exc))
                self.emit(ProposalFailed(generation=generation, optimizer=optimizer.name, error=str(exc)[:500]))
                proposed = []
            made = stats.calls - before[0]
            fresh = made - (stats.cache_hits - before[1])
            self.malformed += allowance.malformed
            # tokens and dollars are the fresh calls' (the gateway does not count a cache hit's tokens)
            self.ledger.charge("optimizer", Spend(calls=max(made, allowance.used), fresh_calls=fresh,
                                                  tokens=stats.prompt_tokens + stats.completion_tokens - before[2],
                                                  usd=stats.cost - before[3], seconds=time.perf_counter() - started))
            for candidate in proposed[: self.config.candidates_per_generation]:
                out.append((optimizer.name, candidate))
        return out

    async def consider(self, generation: int, parent: WorkflowSpec, parent_mb: _Scores, pool: dict[str, _Scores],
                       candidate: Candidate, optimizer: str, mb_ids: list[str], rng: random.Random) -> int:
        spec = candidate.spec
        self.emit(CandidateProposed(generation=generation, spec_hash=spec.hash, parent=parent.hash,
                                    optimizer=optimizer, summary=candidate.change.summary))
        repeat = self.novelty.check(spec.hash, candidate)
        if repeat is not None:
            return self._reject(generation, candidate, optimizer, "novelty", repeat)
        if candidate.parent_hash != parent.hash:
            return self._reject(generation, candidate, optimizer, "invalid",
                                f"the candidate names parent {candidate.parent_hash}, not {parent.hash}")
        measured = [r.llm_calls for r in parent_mb.first()]
        evidence = self.gate_evidence if not measured else self.gate_evidence.model_copy(
            update={"parent_calls_per_task": fmean(measured)})
        verdict = self.gate.check(parent, candidate, evidence)
        if verdict.decision != "accept":
            return self._reject(generation, candidate, optimizer, "gate", verdict.describe(), verdict=verdict)
        self.specs[spec.hash] = spec
        needed = self.repeats(spec) * (len(mb_ids) + len(self.splits.val)) * max(
            1.0, parent_mb.first()[0].llm_calls if parent_mb.first() else 1.0)
        if not self.ledger.fits("executor", needed):
            self.out_of_budget = (f"executor budget spent (the next candidate needs about {needed:.0f} calls, "
                                  f"{self.ledger.calls_left('executor'):.0f} are left)")
            return self._reject(generation, candidate, optimizer, "budget",
                                f"not enough budget left to evaluate it (about {needed:.0f} calls)")
        cand_mb = await self.score(spec, mb_ids)
        if cand_mb.mean() <= parent_mb.mean():
            self.remember(generation, spec, cand_mb.first(), optimizer)
            return self._reject(generation, candidate, optimizer, "minibatch",
                                f"minibatch {cand_mb.mean():.3f} vs parent {parent_mb.mean():.3f} on the same "
                                f"{len(mb_ids)} train tasks", mb=cand_mb.mean(), parent_mb=parent_mb.mean())
        self.remember(generation, spec, cand_mb.first(), optimizer)
        val_ids = self.splits.ids("val")
        cand_val = await self.score(spec, val_ids)
        parent_val = pool[parent.hash]
        gain = compare_paired(parent_val.lists(), cand_val.lists(), rng=rng, level=self.config.acceptance.level,
                              resamples=self.config.acceptance.resamples)
        if not gain.improved(self.config.acceptance.method):
            return self._reject(generation, candidate, optimizer, "noise", gain.describe(), mb=cand_mb.mean(),
                                parent_mb=parent_mb.mean(), val=cand_val.mean(), verdict=verdict,
                                cost=cand_val.cost())
        pool[spec.hash] = cand_val
        self.accepted += 1
        self._record(spec, candidate, generation, optimizer, status="pool", mb=cand_mb.mean(),
                     parent_mb=parent_mb.mean(), val=cand_val.mean(), cost=cand_val.cost(), comparison=gain.describe(),
                     verdict=verdict)
        self._write_yaml(spec, self.folder / "pool" / f"{spec.hash}.yaml")
        self.learn(generation, candidate, gain, mb_ids)
        self.emit(CandidateAccepted(generation=generation, spec_hash=spec.hash, parent=parent.hash,
                                    val_score=cand_val.mean(), comparison=gain.describe()))
        return 1

    def _reject(self, generation: int, candidate: Candidate, optimizer: str, stage: str, reason: str, *,
                verdict: Verdict | None = None, mb: float | None = None, parent_mb: float | None = None,
                val: float | None = None, cost: float = 0.0) -> int:
        self.rejected[stage] += 1
        if stage != "novelty" or self.store.candidate(candidate.spec.hash) is None:  # keep a repeat's first record
            self._record(candidate.spec, candidate, generation, optimizer, status="rejected", stage=stage,
                         reason=reason, verdict=verdict, mb=mb, parent_mb=parent_mb, val=val, cost=cost)
        self.emit(CandidateRejected(generation=generation, spec_hash=candidate.spec.hash, stage=stage,  # type: ignore[arg-type]
                                    reason=reason[:1000]))
        return 0

    def _record(self, spec: WorkflowSpec, candidate: Candidate | None, generation: int, optimizer: str, *,
                status: str, stage: str | None = None, reason: str = "", verdict: Verdict | None = None,
                mb: float | None = None, parent_mb: float | None = None, val: float | None = None,
                test: float | None = None, cost: float = 0.0, comparison: str | None = None) -> None:
        existing = self.store.candidate(spec.hash) if candidate is None else None
        self.store.put_candidate({
            "hash": spec.hash, "parent": candidate.parent_hash if candidate else None, "generation": generation,
            "optimizer": optimizer, "summary": candidate.change.summary if candidate else "seed",
            "change": candidate.change.model_dump(mode="json") if candidate else {}, "yaml": spec_to_yaml(spec),
            "status": status, "stage": stage, "reason": reason,
            "verdict": verdict.model_dump(mode="json") if verdict else None, "mb_score": mb,
            "parent_mb_score": parent_mb, "val_score": val,
            "test_score": test if test is not None else (existing or {}).get("test_score"),
            "comparison": comparison, "cost": cost, "calls": 0, "seq": self.seq})

    def _write_yaml(self, spec: WorkflowSpec, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        lineage = f"# {spec.name} {spec.hash}" + (f", evolved from {spec.parent}" if spec.parent else "") + "\n"
        path.write_text(lineage + spec_to_yaml(spec), encoding="utf-8")

    async def finish(self, pool: dict[str, _Scores], seed_val: _Scores, stop: str, generations: int) -> EvolveResult:
        def rank(h: str) -> tuple[float, float, str]:
            return (-pool[h].mean(), pool[h].cost(), h)

        best_hash = sorted(pool, key=rank)[0]
        best = self.specs[best_hash]
        test_ids = self.splits.ids("test")
        seed_test = await self.score(self.seed, test_ids)
        best_test = seed_test if best_hash == self.seed.hash else await self.score(best, test_ids)
        cmp = compare_paired(seed_test.lists(), best_test.lists(), rng=_derive(self.config.seed, "test"),
                             level=self.config.acceptance.level, resamples=self.config.acceptance.resamples)
        row = self.store.candidate(best_hash) or {}
        self.store.put_candidate({**row, "test_score": best_test.mean()})
        seed_row = self.store.candidate(self.seed.hash) or {}
        self.store.put_candidate({**seed_row, "test_score": seed_test.mean()})
        for h in pool:
            self._write_yaml(self.specs[h], self.folder / "pool" / f"{h}.yaml")
        self._write_yaml(best, self.folder / "best.yaml")
        self.emit(BudgetUpdate(generation=generations, spent=self.ledger.report(seconds=self.elapsed())))
        self.emit(RunFinished(generation=generations, stop_reason=stop, best=best_hash, seed_val=seed_val.mean(),
                              best_val=pool[best_hash].mean(), seed_test=seed_test.mean(), best_test=best_test.mean(),
                              comparison=cmp.describe()))
        self.store.set_meta("finished", {"best": best_hash, "stop_reason": stop})
        from agentforge.evolve.report import write_report

        write_report(self.folder)
        return EvolveResult(
            run_id=self.run_id, folder=self.folder, seed=self.seed, best=best, seed_val=seed_val.mean(),
            best_val=pool[best_hash].mean(), seed_test=seed_test.mean(), best_test=best_test.mean(),
            test_comparison=cmp, stop_reason=stop, generations=generations, pool=sorted(pool, key=rank),
            rejected=dict(self.rejected), accepted=self.accepted, malformed=self.malformed,
            spent=self.ledger.report(seconds=self.elapsed()), events=self.seq, new_calls=self.new_calls())


class _TrainScorer:
    """The scorer optimizers may try specs with: train tasks only, shown through the guard."""

    def __init__(self, evolution: Evolution) -> None:
        self._evolution = evolution

    async def ascore(self, spec: WorkflowSpec, task_ids: Sequence[str]) -> list[TaskResult]:
        self._evolution.guard.show("scorer", list(task_ids))
        self._evolution.specs.setdefault(spec.hash, spec)
        scores = await self._evolution.score(spec, list(task_ids), role="optimizer")
        return scores.first()


def _trajectory(result: TaskResult) -> str:
    nodes = [n.node for t in result.traces for n in t.nodes]
    actions = "; ".join(a[:80] for a in result.actions[-3:])
    return f"{result.steps} step(s) through {' -> '.join(dict.fromkeys(nodes))}; last actions: {actions}"[:500]


# -- the entry points -----------------------------------------------------------------------------

def _open_memory(config: EvolveConfig, folder: Path) -> MemoryStore:
    from agentforge.memory.config import MemoryConfig, load_memory_config, open_memory

    if config.memory is None:
        return open_memory(MemoryConfig(path=folder / "memory"))
    return open_memory(load_memory_config(config.memory))


async def aevolve(workflow: WorkflowSpec | Workflow | str | Path | None, env: Environment | str | None,
                  config: EvolveConfig | None = None, *, on_event: OnEvent | None = None,
                  resume: str | Path | None = None, settings: Settings | None = None,
                  memory: MemoryStore | None = None) -> EvolveResult:
    """Evolve ``workflow`` on ``env``; or, with ``resume`` (a run folder), continue that run where it stopped.

    A new run makes ``<config.runs_dir>/<run id>/``; a resumed one reads its workflow, environment and
    config from the folder (the arguments must then be None or match).
    """
    from agentforge.envs.registry import load_env
    from agentforge.workflow.loader import load_spec

    settings = settings or get_settings()
    owned_early = False
    if resume is not None:
        folder = Path(resume)
        store = RunStore.open(folder)
        meta = store.meta()
        try:
            config = EvolveConfig.model_validate_json(meta["config"])
            seed = spec_from_text(meta["seed_yaml"], file=meta.get("workflow_file") or None)
            env_ref = json.loads(meta["env"])
        except (KeyError, ValueError) as exc:
            store.close()
            raise RunFolderError(f"{folder}: the run store's meta is incomplete or corrupt ({exc}); nothing was "
                                 "changed", path=str(folder)) from exc
        environment = env if isinstance(env, Environment) else load_env(env_ref)
        run_id = meta.get("run_id", folder.name)
        resumed = True
    else:
        config = config or EvolveConfig()
        for name in config.optimizers:
            optimizer_class(name)  # an unknown name fails here, before a folder is made
        if isinstance(workflow, Workflow):
            seed = workflow.spec
        elif isinstance(workflow, WorkflowSpec):
            seed = workflow
        else:
            seed = load_spec(workflow)
        environment = load_env(env) if isinstance(env, str) else env
        env_ref = env if isinstance(env, str) else None
        Splits.of(environment, config.splits)  # too few tasks fails before a folder is made
        if memory is None and config.memory is not None:  # a shared store that is down fails before one too
            memory = _open_memory(config, Path("."))
            owned_early = True
        run_id = new_run_id()
        folder = Path(config.runs_dir or settings.runs_dir) / run_id
        store = RunStore.create(folder, {
            "run_id": run_id, "config": config.model_dump_json(), "seed_yaml": spec_to_yaml(seed),
            "workflow_file": seed.source_file or "", "env": json.dumps(env_ref), "env_name": environment.name,
            "seed_hash": seed.hash,
            "created": str(time.time())})
        resumed = False
    owned = memory is None or owned_early
    try:
        if memory is None:
            memory = _open_memory(config, folder)
        evolution = Evolution(seed, environment, config, folder=folder, store=store, run_id=run_id, settings=settings,
                              memory=memory, on_event=on_event, resumed=resumed,
                              env_ref=env_ref if isinstance(env_ref, str) else None)
        return await evolution.run()
    finally:
        if owned and memory is not None:
            memory.close()
        store.close()


def evolve(workflow: WorkflowSpec | Workflow | str | Path | None, env: Environment | str | None,
           config: EvolveConfig | None = None, **kwargs: Any) -> EvolveResult:
    from agentforge._sync import run_sync

    return run_sync(aevolve(workflow, env, config, **kwargs))


def check_config(config: EvolveConfig) -> None:
    """Raise ``InputError`` for what a config alone shows is wrong (unknown optimizers)."""
    for name in config.optimizers:
        optimizer_class(name)
    if not config.optimizers:
        raise InputError("name at least one optimizer")
