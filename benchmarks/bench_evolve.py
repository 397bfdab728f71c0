"""The evolve acceptance benchmark (issue 15): each optimizer on three suites, the local model as executor and
optimizer, seed vs best on the held-out test split with the paired interval.

Suites, each from a deliberately plain seed:

* ``arithmetic``: single-turn word problems (``envs/arithmetic.yaml``, ``workflows/arithmetic_plain.yaml``);
* ``bigbench``: BIG-bench's general_knowledge, multiple choice, where wording matters
  (``envs/bigbench_general_knowledge.yaml``, ``workflows/bigbench_plain.yaml``; needs `make bigbench-data`);
* ``maze``: the multi-turn maze (``envs/maze.yaml``, ``workflows/maze_plain.yaml``).

Each (suite, optimizer) row runs ``aevolve`` in its own process with its own ``AGENTFORGE_HOME`` (its own
response cache and saved prefixes; the weights are shared), unless ``--keep-cache``, which keeps the homes
under ``.cache/bench-evolve/`` and reuses them on the next run. A row records seed vs best on test with the
paired interval, val seed/best, candidates accepted and rejected by stage, malformed optimizer replies,
LLM calls (total and fresh) and tokens per role, wall time, why it stopped, a ``verdict`` ("improved beyond
noise": the paired interval of best minus seed on test lies above 0; "worse": below 0; otherwise "no
significant change") and a ``why`` derived from the run's own events.

Then one configuration (``--rerun``, default arithmetic/reflect) runs again in a NEW run folder with the
same seed and the same home (so the same response cache): ``cached_rerun`` records its fresh calls (the
target is zero) and the loop overhead, see ``OVERHEAD_DEFINITION``. ``target_30min`` answers the issue's
"5 generations on a 40-task val split in under 30 minutes" from the arithmetic/reflect row.

Writes benchmarks/results/evolve.json (rows merged by (suite, optimizer) into an existing file, and saved
after every row, so a long run that dies keeps what it finished). No timed assertions.

    .venv/bin/python benchmarks/bench_evolve.py [--suites arithmetic,bigbench,maze]
        [--optimizers reflect,textgrad,mipro] [--generations 5] [--val N] [--test N] [--train N]
        [--minibatch 8] [--candidates 3] [--seed 0] [--rerun SUITE/OPTIMIZER | --no-rerun]
        [--keep-cache] [--quick] [--out PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks"
RESULTS = HERE / "results" / "evolve.json"
KEEP_DIR = ROOT / ".cache" / "bench-evolve"
BIGBENCH_TASKS = ROOT / ".cache" / "bigbench" / "benchmark_tasks"
ROW_TIMEOUT_S = 6 * 3600.0
OPTIMIZERS = ("reflect", "textgrad", "mipro")
TARGET_MINUTES = 30.0
TARGET_VAL = 40
TARGET_GENERATIONS = 5
TARGET_OVERHEAD = 0.05
OVERHEAD_DEFINITION = (
    "(wall - executor seconds - optimizer seconds) / wall, on a re-run of a finished configuration in a new run "
    "folder with the same seed and response cache. executor / optimizer seconds: EvolveResult.spent[role]"
    "['seconds'], the time inside evaluations (aevaluate) and inside optimizer proposals (apropose). wall: "
    "EvolveResult.spent['total']['seconds'], the loop's own wall time from its start to its result (opening the "
    "run store and the memory store comes before it); overhead_frac_process uses the whole aevolve call instead.")


@dataclass(frozen=True)
class Suite:
    name: str
    env: str
    workflow: str
    multi_turn: bool
    val: int | None  # full-run defaults (None: the whole split)
    test: int | None
    minibatch: int


SUITES: dict[str, Suite] = {
    "arithmetic": Suite("arithmetic", "arithmetic", "workflows/arithmetic_plain.yaml", False, 40, 40, 8),
    "bigbench": Suite("bigbench", "bigbench_general_knowledge", "workflows/bigbench_plain.yaml", False, None, None, 8),
    # An episode is up to max(30, 4 x shortest path) calls (47 on average for the plain seed, which rarely reaches
    # the goal), each a few seconds: 10 val and 10 test episodes keep a row to a few hours.
    "maze": Suite("maze", "maze", "workflows/maze_plain.yaml", True, 10, 10, 4),
}
# --quick runs the maze suite on 3x3 mazes (at most 30 moves each) instead of envs/maze.yaml's 5x5 to 9x9.
QUICK_MAZE_SIZES = (3,)

# --quick: a smoke run of the whole path, too small for its verdicts to mean anything.
QUICK = {"single": {"train": 8, "val": 6, "test": 6, "minibatch": 4, "candidates": 2},
         "multi": {"train": 2, "val": 2, "test": 2, "minibatch": 1, "candidates": 1}}
QUICK_OPTIONS: dict[str, dict[str, Any]] = {
    "reflect": {"candidates": 2},
    "textgrad": {"candidates": 1, "max_records": 3},
    "mipro": {"num_candidates": 2, "num_trials": 2, "max_tasks": 8, "minibatch_size": 4, "candidates": 1},
}


# -- one row, in a worker process ------------------------------------------------------------------------
class _Tally:
    """What the run's events say: proposals, rejections with their first reasons, failed proposals."""

    def __init__(self) -> None:
        self.proposed = 0
        self.reasons: dict[str, list[str]] = {}
        self.failures: list[str] = []
        self.splits: dict[str, int] = {}
        self.preflight = ""

    def __call__(self, event: Any) -> None:
        kind = event.type
        if kind == "candidate_proposed":
            self.proposed += 1
        elif kind == "candidate_rejected":
            self.reasons.setdefault(event.stage, []).append(event.reason[:300])
        elif kind == "proposal_failed":
            self.failures.append(f"{event.optimizer}: {event.error[:300]}")
        elif kind == "run_started":
            self.splits = dict(event.splits)
        elif kind == "preflight":
            self.preflight = event.text


class _OptimizerLog:
    """Keeps the optimizers' own log events (``reflect.*``, ``textgrad.*``, ``mipro.*``: what they tried, why they
    proposed nothing) and passes every info-level event on to stderr, the worker's log."""

    PREFIXES = ("reflect.", "textgrad.", "mipro.", "evolve.")

    def __init__(self) -> None:
        self.events: list[dict[str, str]] = []

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        name = str(event.get("event", ""))
        if name.startswith(self.PREFIXES):
            self.events.append({k: str(v)[:240] for k, v in event.items()})
        return event

    def install(self) -> None:
        import logging

        import structlog

        structlog.configure(processors=[self, structlog.processors.add_log_level,
                                        structlog.dev.ConsoleRenderer(colors=False)],
                            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
                            logger_factory=structlog.PrintLoggerFactory(sys.stderr), cache_logger_on_first_use=True)


def _fresh_call_counter() -> Any:
    """A litellm logger counting the calls that reached a model (the gateway's cache answers before litellm):
    an independent check on the loop's own fresh-call count."""
    import litellm
    from litellm.integrations.custom_logger import CustomLogger

    class Counter(CustomLogger):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.ok = 0
            self.failed = 0

        async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any,
                                          end_time: Any) -> None:
            self.ok += 1

        async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any,
                                          end_time: Any) -> None:
            self.failed += 1

    counter = Counter()
    litellm.callbacks = [*litellm.callbacks, counter]
    return counter


def _lineage(folder: Path, best: str) -> list[str]:
    """The change summaries from the seed to the best, oldest first."""
    from agentforge.evolve.store import RunStore

    store = RunStore.open(folder)
    try:
        rows = {r["hash"]: r for r in store.candidates()}
    finally:
        store.close()
    out: list[str] = []
    current = rows.get(best)
    while current is not None and current.get("parent"):
        out.append(f"{current.get('optimizer')}: {current.get('summary') or '(no summary)'}"[:300])
        current = rows.get(current["parent"])
    return out[::-1]


def _fresh_by_spec(folder: Path) -> dict[str, dict[str, Any]]:
    """Per evaluated spec: its evaluation calls that reached the model, and whether the spec samples
    (temperature > 0, whose calls the response cache does not keep by default)."""
    from agentforge.evolve.loop import samples
    from agentforge.evolve.store import RunStore
    from agentforge.workflow.loader import spec_from_text

    store = RunStore.open(folder)
    try:
        fresh: dict[str, int] = {}
        for spec_hash, task_id, repeat, *_ in store.scores():
            result = store.results(spec_hash, [task_id], repeat)[task_id]
            fresh[spec_hash] = fresh.get(spec_hash, 0) + result.llm_calls - result.cached_calls
        rows = {r["hash"]: r for r in store.candidates()}
    finally:
        store.close()
    out: dict[str, dict[str, Any]] = {}
    for spec_hash, n in fresh.items():
        row = rows.get(spec_hash)
        sampling = samples(spec_from_text(row["yaml"])) if row and row.get("yaml") else None
        out[spec_hash] = {"fresh_calls": n, "samples": sampling}
    return out


def run_row(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run one evolve in this process (its home comes from AGENTFORGE_HOME) and describe it."""
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)  # env names resolve in envs/, workflow paths from the repository
    from agentforge.config import get_settings
    from agentforge.evolve.config import BudgetConfig, EvolveConfig, SplitConfig
    from agentforge.evolve.loop import aevolve

    suite = SUITES[cfg["suite"]]
    counter = _fresh_call_counter()
    tally = _Tally()
    optimizer_log = _OptimizerLog()
    optimizer_log.install()
    settings = get_settings()
    least = min(4, cfg["val"] or 4, cfg["test"] or 4)
    splits = SplitConfig(train=cfg["train"], val=cfg["val"], test=cfg["test"], min_train=2, min_val=least,
                         min_test=least)
    env: Any = suite.env
    if cfg.get("maze_sizes"):
        from agentforge.envs.games.maze import MazeEnv

        env = MazeEnv(num_tasks=60, seed=0, splits={"train": 0.6, "val": 0.2, "test": 0.2}, sizes=cfg["maze_sizes"])
    config = EvolveConfig(
        optimizers=(cfg["optimizer"],), optimizer_options={cfg["optimizer"]: cfg["options"]} if cfg["options"] else {},
        optimizer_model="local", seed=cfg["seed"], splits=splits, minibatch=cfg["minibatch"],
        candidates_per_generation=cfg["candidates"], patience=max(1, cfg["generations"]),
        budget=BudgetConfig(generations=cfg["generations"], calls_per_proposal=cfg["calls_per_proposal"]),
        runs_dir=settings.home / "runs")
    started = time.perf_counter()
    result = asyncio.run(aevolve(ROOT / suite.workflow, env, config, on_event=tally))
    wall = time.perf_counter() - started
    c = result.test_comparison
    spent = result.spent
    roles = {role: {k: spent[role][k] for k in ("calls", "fresh_calls", "tokens", "seconds")}
             for role in ("executor", "optimizer", "total")}
    return {
        "suite": suite.name, "optimizer": cfg["optimizer"], "quick": cfg["quick"],
        "env": suite.env + (f" (sizes {cfg['maze_sizes']})" if cfg.get("maze_sizes") else ""),
        "workflow": suite.workflow, "multi_turn": suite.multi_turn, "splits": tally.splits,
        "config": {k: cfg[k] for k in ("generations", "minibatch", "candidates", "seed", "calls_per_proposal",
                                       "options")} | {"patience": config.patience,
                                                      "acceptance": config.acceptance.model_dump()},
        "run_id": result.run_id, "seed_hash": result.seed.hash, "best_hash": result.best.hash,
        "best_is_seed": result.best.hash == result.seed.hash, "best_lineage": _lineage(result.folder, result.best.hash),
        "seed_test": c_round(result.seed_test), "best_test": c_round(result.best_test),
        "test": {"n": c.n, "diff": c_round(c.mean_diff), "ci_low": c_round(c.ci_low), "ci_high": c_round(c.ci_high),
                 "level": c.level, "wins": c.wins, "losses": c.losses, "ties": c.ties, "sign_p": c_round(c.sign_p)},
        "seed_val": c_round(result.seed_val), "best_val": c_round(result.best_val),
        "generations": result.generations, "stop_reason": result.stop_reason,
        "proposed": tally.proposed, "accepted": result.accepted, "rejected": result.rejected,
        "rejected_examples": {stage: reasons[:2] for stage, reasons in tally.reasons.items()},
        "proposal_failures": tally.failures[:5], "proposal_failures_count": len(tally.failures),
        "malformed": result.malformed, "spent": roles,
        "fresh_calls_seen_by_litellm": counter.ok + counter.failed,
        "fresh_eval_calls_by_spec": _fresh_by_spec(result.folder),
        "wall_s": round(wall, 2), "loop_wall_s": round(spent["total"]["seconds"], 2),
        "preflight": tally.preflight, "events": result.events, "optimizer_log": optimizer_log.events[-12:],
    }


def c_round(x: float) -> float:
    return round(float(x), 4)


# -- verdicts -------------------------------------------------------------------------------------------------
def verdict(row: dict[str, Any]) -> str:
    test = row["test"]
    if test["ci_low"] > 0:
        return "improved beyond noise"
    if test["ci_high"] < 0:
        return "worse"
    return "no significant change"


def _optimizer_said(row: dict[str, Any]) -> str:
    """The optimizer's own last word on a proposal that came to nothing, from its log events."""
    for event in reversed(row.get("optimizer_log") or []):
        name = event.get("event", "")
        reason = event.get("why") or event.get("why_none") or event.get("reason")
        if reason and name.startswith(("reflect.", "textgrad.", "mipro.")):
            return f"{name}: {reason}"[:160]
        if name in ("reflect.proposed", "textgrad.proposed", "mipro.done"):
            keys = [k for k in ("stopped", "candidates", "proposed", "lm_calls", "calls", "menu", "chosen_by",
                                "rewrites_rejected") if k in event]
            return f"{name}: " + ", ".join(f"{k}={event[k]}" for k in keys)[:160]
    return ""


def why(row: dict[str, Any]) -> str:
    """A short reason read off the run: where candidates stopped, or whether val gains held on test."""
    parts: list[str] = []
    proposed, accepted, rejected = row["proposed"], row["accepted"], row["rejected"]
    test = row["test"]
    if proposed == 0:
        failed = row["proposal_failures_count"]
        said = _optimizer_said(row)
        parts.append("the optimizer proposed no candidate"
                     + (f" ({failed} proposal(s) failed: {row['proposal_failures'][0][:120]})" if failed
                        else f" ({said})" if said else ""))
    elif accepted == 0:
        stage, n = max(rejected.items(), key=lambda kv: kv[1]) if rejected else ("", 0)
        said = {
            "minibatch": f"no candidate passed the minibatch ({n} of {proposed} did not beat the parent there)",
            "noise": f"{n} of {proposed} beat the parent on the minibatch but not beyond noise on val",
            "gate": f"the gate rejected {n} of {proposed}",
            "novelty": f"{n} of {proposed} were repeats or near-duplicates",
            "budget": f"{n} of {proposed} did not fit the budget",
            "invalid": f"{n} of {proposed} were invalid",
        }.get(stage, f"nothing accepted of {proposed}")
        example = (row.get("rejected_examples") or {}).get(stage) or []
        if stage == "gate" and example:
            said += f" ({example[0][:120]})"
        others = ", ".join(f"{k} {v}" for k, v in sorted(rejected.items()) if k != stage)
        parts.append(said + (f"; also rejected: {others}" if others else ""))
    elif row["best_is_seed"]:
        parts.append(f"{accepted} accepted, but none beat the seed on val")
    else:
        val_gain = row["best_val"] - row["seed_val"]
        if row["verdict"] == "improved beyond noise":
            change = row["best_lineage"][-1] if row["best_lineage"] else "a changed spec"
            parts.append(f"{accepted} accepted; val {val_gain:+.3f}, test {test['diff']:+.3f}; best: {change[:140]}")
        else:
            parts.append(f"gains on val did not hold on test (val {val_gain:+.3f}, test {test['diff']:+.3f} "
                         f"[{test['ci_low']:+.3f}, {test['ci_high']:+.3f}] on {test['n']} tasks)")
    optimizer_calls = row["spent"]["optimizer"]["calls"]
    if row["malformed"]:
        parts.append(f"malformed replies {row['malformed']} of {optimizer_calls} optimizer calls")
    if row["stop_reason"].startswith("budget"):
        parts.append(f"stopped on {row['stop_reason']}")
    if row["quick"]:
        parts.append("a --quick smoke run: too few tasks for a verdict")
    return "; ".join(parts)


# -- orchestration ---------------------------------------------------------------------------------------
def worker_env(home: Path, models_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["AGENTFORGE_HOME"] = str(home)
    env["AGENTFORGE_MODEL_DIR"] = str(models_dir)
    env.pop("AGENTFORGE_CACHE", None)  # the response cache is what the cached re-run measures
    if "AGENTFORGE_BIGBENCH_DIR" not in env and BIGBENCH_TASKS.is_dir():
        env["AGENTFORGE_BIGBENCH_DIR"] = str(BIGBENCH_TASKS)
    return env


def spawn_row(cfg: dict[str, Any], home: Path, models_dir: Path) -> dict[str, Any]:
    home.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(cfg)]
    started = time.perf_counter()
    log = home / f"worker-{time.strftime('%H%M%S')}.log"
    try:
        with log.open("w", encoding="utf-8") as errors:
            proc = subprocess.run(cmd, env=worker_env(home, models_dir), stdout=subprocess.PIPE, stderr=errors,
                                  text=True, timeout=ROW_TIMEOUT_S, check=False, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {ROW_TIMEOUT_S:.0f} s"}
    process_wall = round(time.perf_counter() - started, 2)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-6:]
        return {"error": " | ".join(tail)[-1500:] or f"exit {proc.returncode}", "process_wall_s": process_wall}
    row = dict(json.loads(lines[-1]))
    row["process_wall_s"] = process_wall
    return row


def row_config(suite: Suite, optimizer: str, args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        sizes = QUICK["multi" if suite.multi_turn else "single"]
        train, val, test = sizes["train"], sizes["val"], sizes["test"]
        minibatch, candidates = sizes["minibatch"], sizes["candidates"]
        options = dict(QUICK_OPTIONS.get(optimizer, {}))
    else:
        train, val, test = args.train, args.val or suite.val, args.test or suite.test
        minibatch, candidates, options = args.minibatch or suite.minibatch, args.candidates, {}
    maze_sizes = list(QUICK_MAZE_SIZES) if args.quick and suite.name == "maze" else None
    return {"suite": suite.name, "optimizer": optimizer, "quick": args.quick, "seed": args.seed,
            "maze_sizes": maze_sizes,
            "generations": 1 if args.quick and args.generations is None else (args.generations or TARGET_GENERATIONS),
            "train": train, "val": val, "test": test, "minibatch": minibatch, "candidates": candidates,
            "calls_per_proposal": args.calls_per_proposal, "options": options}


def describe_rerun(first: dict[str, Any], again: dict[str, Any]) -> dict[str, Any]:
    if "error" in again:
        return {"row": f"{first['suite']}/{first['optimizer']}", "error": again["error"]}
    spent = again["spent"]
    inside = spent["executor"]["seconds"] + spent["optimizer"]["seconds"]
    loop_wall, process_wall = again["loop_wall_s"], again["wall_s"]
    overhead = (loop_wall - inside) / loop_wall if loop_wall else None
    process_overhead = (process_wall - inside) / process_wall if process_wall else None
    fresh = spent["total"]["fresh_calls"]
    by_spec = {h: v for h, v in (again.get("fresh_eval_calls_by_spec") or {}).items() if v["fresh_calls"]}
    sampled = sum(v["fresh_calls"] for v in by_spec.values() if v["samples"])
    note = ""
    if fresh:
        note = (f"{sampled} of the {fresh} fresh calls evaluated candidates that sample (temperature > 0): the "
                "response cache keeps unseeded sampling only with AGENTFORGE_CACHE_SAMPLING=1, so a new run folder "
                "draws them again (a --resume reads them from its run store instead)")
    return {
        "row": f"{first['suite']}/{first['optimizer']}", "quick": first["quick"],
        "first_run_id": first["run_id"], "rerun_id": again["run_id"],
        "calls": spent["total"]["calls"], "fresh_calls": fresh,
        "fresh_calls_seen_by_litellm": again["fresh_calls_seen_by_litellm"],
        "zero_fresh_calls": fresh == 0 and again["fresh_calls_seen_by_litellm"] == 0,
        # where fresh calls came from: evaluations of specs that sample are not answered by the cache by default
        "fresh_eval_calls_by_spec": by_spec, "fresh_calls_note": note,
        "same_best": again["best_hash"] == first["best_hash"], "same_test": again["best_test"] == first["best_test"],
        "first_wall_s": first["wall_s"], "wall_s": process_wall, "loop_wall_s": loop_wall,
        "executor_s": round(spent["executor"]["seconds"], 3), "optimizer_s": round(spent["optimizer"]["seconds"], 3),
        "overhead_frac": round(overhead, 4) if overhead is not None else None,
        "overhead_frac_process": round(process_overhead, 4) if process_overhead is not None else None,
        "target": TARGET_OVERHEAD,
        "pass": overhead is not None and overhead < TARGET_OVERHEAD and fresh == 0,
        "definition": OVERHEAD_DEFINITION,
    }


def target_30min(rows: list[dict[str, Any]]) -> dict[str, Any]:
    row = next((r for r in rows if r.get("suite") == "arithmetic" and r.get("optimizer") == "reflect"
                and "error" not in r), None)
    base = {"target_minutes": TARGET_MINUTES, "needs": f"arithmetic/reflect with --val {TARGET_VAL} --generations "
                                                        f"{TARGET_GENERATIONS}",
            "command": f".venv/bin/python benchmarks/bench_evolve.py --suites arithmetic --optimizers reflect "
                       f"--val {TARGET_VAL} --generations {TARGET_GENERATIONS}"}
    if row is None:
        return {**base, "measured": False, "pass": None}
    val = (row.get("splits") or {}).get("val", 0)
    measured = not row["quick"] and val >= TARGET_VAL and row["generations"] >= TARGET_GENERATIONS
    minutes = row["wall_s"] / 60
    return {**base, "measured": measured, "val": val, "generations": row["generations"],
            "wall_minutes": round(minutes, 2), "stop_reason": row["stop_reason"],
            "pass": (minutes < TARGET_MINUTES) if measured else None}


def merge_rows(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    key = {(r.get("suite"), r.get("optimizer")): i for i, r in enumerate(old)}
    out = list(old)
    for row in new:
        k = (row.get("suite"), row.get("optimizer"))
        if k in key:
            out[key[k]] = row
        else:
            key[k] = len(out)
            out.append(row)
    order = {name: i for i, name in enumerate(SUITES)}
    return sorted(out, key=lambda r: (order.get(r.get("suite", ""), 99),
                                      OPTIMIZERS.index(r["optimizer"]) if r.get("optimizer") in OPTIMIZERS else 99))


def write(out: Path, report: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out)


def _names(text: str, known: tuple[str, ...]) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown {unknown or 'empty list'}; choose from {', '.join(known)}")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--suites", type=lambda t: _names(t, tuple(SUITES)), default=list(SUITES))
    parser.add_argument("--optimizers", type=lambda t: _names(t, OPTIMIZERS), default=list(OPTIMIZERS))
    parser.add_argument("--generations", type=int, default=None,
                        help=f"generations per run (default {TARGET_GENERATIONS}; 1 with --quick)")
    parser.add_argument("--val", type=int, default=None, help="val tasks (default per suite: arithmetic 40, "
                                                              "bigbench all 19, maze 10)")
    parser.add_argument("--test", type=int, default=None, help="test tasks (default per suite, as --val)")
    parser.add_argument("--train", type=int, default=None, help="train tasks (default: the whole split)")
    parser.add_argument("--minibatch", type=int, default=None, help="train tasks per generation (default per "
                                                                   "suite: 8, maze 4)")
    parser.add_argument("--candidates", type=int, default=3, help="candidates per optimizer per generation")
    parser.add_argument("--calls-per-proposal", type=int, default=None,
                        help="optimizer allowance per proposal (default: each optimizer's own)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rerun", default="arithmetic/reflect",
                        help="the row re-run in a new folder with the same cache (overhead, zero fresh calls)")
    parser.add_argument("--no-rerun", action="store_true")
    parser.add_argument("--keep-cache", action="store_true",
                        help=f"keep each row's home (cache) under {KEEP_DIR.relative_to(ROOT)} and reuse it")
    parser.add_argument("--quick", action="store_true", help="tiny splits and 1 generation: a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--refresh-verdicts", action="store_true",
                        help="only recompute each row's verdict and why in --out from its recorded figures")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        cfg = json.loads(args.worker)
        sys.stdout.write(json.dumps(run_row(cfg)) + "\n")
        return
    if args.refresh_verdicts:
        report = json.loads(args.out.read_text(encoding="utf-8"))
        for row in report.get("rows") or []:
            if "error" not in row:
                row["verdict"] = verdict(row)
                row["why"] = why(row)
        write(args.out, report)
        return

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE))
    from machine import machine_info

    from agentforge.config import get_settings
    from agentforge.llm.weights import resolve_weights

    info = machine_info()
    settings = get_settings()
    resolve_weights(settings.local, settings.models_dir)  # assemble/verify once, outside every row
    scratch = KEEP_DIR if args.keep_cache else Path(tempfile.mkdtemp(prefix="agentforge-bench-evolve-"))
    old = json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file() else {}
    report: dict[str, Any] = {
        "benchmark": "evolve", "machine": info, "model": "local (Qwen2.5-Coder-0.5B-Instruct, llama.cpp)",
        "suites": {s: asdict(SUITES[s]) for s in SUITES}, "rows": old.get("rows", []),
        "cached_rerun": old.get("cached_rerun"), "target_30min": old.get("target_30min"),
        "verdict_rule": "improved beyond noise: the paired interval of best minus seed on test lies above 0; worse: "
                        "below 0; otherwise no significant change",
    }
    rows: list[dict[str, Any]] = []
    homes: dict[tuple[str, str], Path] = {}
    try:
        for suite_name in args.suites:
            for optimizer in args.optimizers:
                suite = SUITES[suite_name]
                cfg = row_config(suite, optimizer, args)
                home = scratch / f"{suite_name}-{optimizer}"
                homes[(suite_name, optimizer)] = home
                sys.stderr.write(f"== {suite_name}/{optimizer}: {json.dumps(cfg)}\n")
                row = spawn_row(cfg, home, settings.models_dir)
                row.setdefault("suite", suite_name)
                row.setdefault("optimizer", optimizer)
                row.setdefault("quick", args.quick)
                if "error" not in row:
                    row["verdict"] = verdict(row)
                    row["why"] = why(row)
                    sys.stderr.write(f"   test {row['seed_test']:.3f} -> {row['best_test']:.3f} "
                                     f"[{row['test']['ci_low']:+.3f}, {row['test']['ci_high']:+.3f}], "
                                     f"{row['spent']['total']['calls']} calls, {row['wall_s']:.0f} s: "
                                     f"{row['verdict']}; {row['why']}\n")
                else:
                    sys.stderr.write(f"   error: {row['error']}\n")
                row["cfg"] = cfg
                rows.append(row)
                report["rows"] = merge_rows(report["rows"], [row])
                report["target_30min"] = target_30min(report["rows"])
                write(args.out, report)
        suite_name, _, optimizer = args.rerun.partition("/")
        first = next((r for r in rows if r["suite"] == suite_name and r["optimizer"] == optimizer
                      and "error" not in r), None)
        if not args.no_rerun and first is not None:
            sys.stderr.write(f"== cached re-run of {args.rerun} in a new run folder\n")
            again = spawn_row(first["cfg"], homes[(suite_name, optimizer)], settings.models_dir)
            report["cached_rerun"] = describe_rerun(first, again)
            sys.stderr.write(f"   {json.dumps(report['cached_rerun'])}\n")
        report["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        write(args.out, report)
    finally:
        if not args.keep_cache:
            shutil.rmtree(scratch, ignore_errors=True)
    shown = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
    sys.stdout.write(f"written to {shown}\n")


if __name__ == "__main__":
    main()
