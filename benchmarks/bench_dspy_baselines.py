"""DSPy's own GEPA and MIPROv2 beside agentforge's optimizers: same model, same arithmetic tasks and splits,
same call budget; held-out test score vs LLM calls for each.

* **Model**: the GGUF agentforge's local provider runs (``agentforge.llm.weights.resolve_weights``), served by
  llama-cpp-python's OpenAI-compatible server on loopback (``python -m llama_cpp.server``, 1 thread), which
  dspy reaches as ``dspy.LM("openai/<alias>", api_base=..., cache=False)``. The server needs llama-cpp-python's
  ``server`` extra; this script says which packages are missing before it starts anything.
* **Tasks and splits**: ``envs/arithmetic.yaml`` cut by ``agentforge.evolve.splits.Splits`` with the sizes of
  agentforge's arithmetic run in ``results/evolve.json`` (or ``--train/--val/--test``), so the task ids are
  agentforge's. Scored by the environment's own metric (``env.grade``), its feedback handed to GEPA.
* **Program**: the plain seed agentforge starts from, as dspy: one ``dspy.Predict`` (or ``--program cot``,
  ``dspy.ChainOfThought``) on ``question -> answer`` with the instruction "Solve the problem.".
* **Budget**: ``call_cap`` = the total LLM calls (executor + optimizer, as counted) of the matched agentforge
  row (``--match``, default arithmetic/reflect), or ``--cap N``. Every call dspy makes while optimising counts
  (task runs, demo bootstrapping, instruction proposals, reflections, adapter retries). GEPA gets
  ``auto="light"`` and a stopper that ends it once the cap is reached (checked between its iterations, so it
  may pass the cap by one iteration: ``calls`` says by how much). MIPROv2 (``auto="light"``) has no stopping
  hook, so its LM refuses calls past the cap: later trials fail and score 0, and its best so far stands.
  Scoring the seed and the result on val and test comes after, outside the cap, counted apart.

Writes benchmarks/results/dspy_baselines.json. No timed assertions.

    PYTHONPATH=<server extras> .venv/bin/python benchmarks/bench_dspy_baselines.py [--quick]
        [--optimizers mipro,gepa] [--cap N | --match arithmetic/reflect] [--program predict|cot]
        [--train N] [--val N] [--test N] [--out PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks"
RESULTS = HERE / "results" / "dspy_baselines.json"
EVOLVE_RESULTS = HERE / "results" / "evolve.json"
ALIAS = "qwen2.5-coder-0.5b-local"
INSTRUCTION = "Solve the problem."
SERVER_START_TIMEOUT_S = 180.0
# module -> the pip name of what provides it: llama-cpp-python's `server` extra
SERVER_MODULES = {"uvicorn": "uvicorn", "fastapi": "fastapi", "sse_starlette": "sse-starlette",
                  "starlette_context": "starlette-context", "pydantic_settings": "pydantic-settings",
                  "yaml": "PyYAML"}
QUICK_SIZES = {"train": 6, "val": 6, "test": 6}
DEFAULT_SIZES = {"train": None, "val": 40, "test": 40}


def missing_server_modules() -> list[str]:
    return [pip for module, pip in SERVER_MODULES.items() if importlib.util.find_spec(module) is None]


# -- the llama.cpp server -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SERVE_FLAG = "--serve-llama-cpp"


def serve(argv: list[str]) -> None:
    """``python -m llama_cpp.server ARGV`` with llama.cpp's extra (repacked) weight buffers off, as agentforge's
    local provider loads the model (``agentforge.llm.local._load``): a natively built ggml uses AMX tiles when
    the CPU advertises them, and on this machine's VM the CPU advertises AMX but traps on it (SIGILL on the
    first decode). The server has no option for it, so the default model parameters are swapped here."""
    import runpy

    import llama_cpp

    low_level = llama_cpp.llama_cpp
    defaults = low_level.llama_model_default_params

    def no_extra_buffers() -> Any:
        params = defaults()
        if hasattr(params, "use_extra_bufts"):
            params.use_extra_bufts = False
        return params

    low_level.llama_model_default_params = no_extra_buffers
    sys.argv = ["llama_cpp.server", *argv]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


class Server:
    """llama-cpp-python's OpenAI-compatible server on 127.0.0.1 (see :func:`serve`), started and stopped by this
    script (by its own pid)."""

    def __init__(self, model: Path, log: Path, threads: int, n_ctx: int) -> None:
        self.port = free_port()
        self.log = log
        self.cmd = [sys.executable, str(Path(__file__).resolve()), SERVE_FLAG, "--model", str(model),
                    "--model_alias", ALIAS, "--host", "127.0.0.1", "--port", str(self.port),
                    "--n_threads", str(threads), "--n_threads_batch", str(threads), "--n_ctx", str(n_ctx),
                    "--verbose", "False"]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> Server:
        with self.log.open("wb") as out:
            # unbuffered, so the access log (requests()) is on disk as each request ends
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
                raise RuntimeError(f"llama_cpp.server exited with {self.proc.returncode}: {' | '.join(tail)}")
            try:
                with urllib.request.urlopen(f"{self.api_base}/models", timeout=2) as reply:
                    if reply.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.__exit__()
        raise RuntimeError(f"llama_cpp.server did not answer within {SERVER_START_TIMEOUT_S:.0f} s")

    def requests(self) -> int:
        """Completion requests the server has logged: an independent check on the counted calls."""
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return text.count("POST /v1/chat/completions") + text.count("POST /v1/completions")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- counting and capping dspy's calls ----------------------------------------------------------------------
class CallCapReached(Exception):
    """The optimisation's call budget is spent: dspy counts the call as a failed example and moves on."""


class Counter:
    """LLM calls shared by every LM of one optimisation (task and proposer alike), with an optional hard cap."""

    def __init__(self, cap: int | None = None) -> None:
        self.cap = cap
        self.calls = 0
        self.refused = 0
        self._lock = threading.Lock()

    def claim(self) -> None:
        with self._lock:
            if self.cap is not None and self.calls >= self.cap:
                self.refused += 1
                raise CallCapReached(f"the call budget of {self.cap} is spent")
            self.calls += 1


def make_lm(api_base: str, counter: Counter, *, temperature: float, max_tokens: int) -> Any:
    import dspy

    class CountingLM(dspy.LM):  # type: ignore[misc]
        """dspy's LM, each call (sync or async) claimed from ``counter`` first."""

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            counter.claim()
            return super().__call__(*args, **kwargs)

        async def acall(self, *args: Any, **kwargs: Any) -> Any:
            counter.claim()
            return await super().acall(*args, **kwargs)

    return CountingLM(f"openai/{ALIAS}", api_base=api_base, api_key="x", cache=False, temperature=temperature,
                      max_tokens=max_tokens, num_retries=0)


# -- the task ---------------------------------------------------------------------------------------------
def load_splits(sizes: dict[str, int | None]) -> tuple[Any, dict[str, list[Any]]]:
    sys.path.insert(0, str(ROOT))
    from agentforge.envs.registry import load_env
    from agentforge.evolve.config import SplitConfig
    from agentforge.evolve.splits import Splits

    env = load_env("arithmetic")
    splits = Splits.of(env, SplitConfig(train=sizes["train"], val=sizes["val"], test=sizes["test"], min_train=2))
    return env, {"train": list(splits.train), "val": list(splits.val), "test": list(splits.test)}


def examples(tasks: list[Any]) -> list[Any]:
    import dspy

    return [dspy.Example(question=t.inputs["question"], task_id=t.id).with_inputs("question") for t in tasks]


def make_program(kind: str) -> Any:
    import dspy

    signature = dspy.Signature("question -> answer", INSTRUCTION)
    return dspy.ChainOfThought(signature) if kind == "cot" else dspy.Predict(signature)


class Metric:
    """The environment's own grade of ``pred.answer`` against the task's answer, with its feedback."""

    def __init__(self, env: Any, tasks: list[Any]) -> None:
        self.env = env
        self.by_id = {t.id: t for t in tasks}

    def grade(self, example: Any, pred: Any) -> tuple[float, str]:
        answer = getattr(pred, "answer", None)
        if answer is None:
            return 0.0, "no answer field was produced"
        score = self.env.grade(str(answer), self.by_id[example.task_id])
        return float(score.value), score.feedback or ("correct" if score.value >= 1 else "wrong")

    def __call__(self, example: Any, pred: Any, trace: Any = None) -> float:
        return self.grade(example, pred)[0]

    def with_feedback(self, example: Any, pred: Any, trace: Any = None, pred_name: Any = None,
                      pred_trace: Any = None) -> Any:
        import dspy

        value, feedback = self.grade(example, pred)
        return dspy.Prediction(score=value, feedback=feedback)


def score(program: Any, data: list[Any], metric: Metric, lm: Any) -> dict[str, Any]:
    """Per-task scores of ``program`` on ``data``, one task after another; an error scores 0 and is counted."""
    import dspy

    per: dict[str, float] = {}
    errors = 0
    with dspy.context(lm=lm):
        for example in data:
            try:
                pred = program(**example.inputs())
                per[example.task_id] = metric(example, pred)
            except Exception:  # a failed example scores 0, as dspy.Evaluate counts it
                errors += 1
                per[example.task_id] = 0.0
    return {"mean": round(sum(per.values()) / len(per), 4) if per else 0.0, "per_task": per, "errors": errors}


def describe_program(program: Any) -> dict[str, Any]:
    predictor = program.predictors()[0]
    return {"instruction": str(predictor.signature.instructions)[:1500], "demos": len(predictor.demos or [])}


# -- the optimisers ---------------------------------------------------------------------------------------
class CapStopper:
    """GEPA stop condition: the shared counter reached the cap."""

    def __init__(self, counter: Counter, cap: int | None) -> None:
        self.counter = counter
        self.cap = cap

    def __call__(self, gepa_state: Any) -> bool:
        return self.cap is not None and self.counter.calls >= self.cap


def run_optimizer(name: str, data: dict[str, list[Any]], metric: Metric, api_base: str, cap: int | None,
                  quick: bool, program_kind: str, seed: int) -> dict[str, Any]:
    import dspy

    counter = Counter(cap if name == "mipro" else None)  # GEPA stops itself through CapStopper
    task_lm = make_lm(api_base, counter, temperature=0.0, max_tokens=256)
    prompt_lm = make_lm(api_base, counter, temperature=0.7, max_tokens=600)
    program = make_program(program_kind)
    settings: dict[str, Any]
    started = time.perf_counter()
    error = None
    with dspy.context(lm=task_lm):
        try:
            if name == "mipro":
                settings = ({"auto": None, "num_candidates": 2, "num_trials": 3, "max_bootstrapped_demos": 2,
                             "max_labeled_demos": 2} if quick else {"auto": "light"})
                optimizer = dspy.MIPROv2(metric=metric, prompt_model=prompt_lm, task_model=task_lm,
                                         auto=settings["auto"], num_candidates=settings.get("num_candidates"),
                                         num_threads=1, max_errors=10**6, seed=seed, verbose=False,
                                         track_stats=False)
                extra: dict[str, Any] = {"num_trials": settings["num_trials"], "max_bootstrapped_demos": 2,
                                         "max_labeled_demos": 2} if quick else {}
                # MIPRO refuses a minibatch (35 by default) larger than the val set: then every trial is full.
                extra["minibatch"] = len(data["val"]) > 35
                best = optimizer.compile(program, trainset=data["train"], valset=data["val"], **extra)
            else:
                settings = {"auto": None, "max_metric_calls": 30} if quick else {"auto": "light"}
                optimizer = dspy.GEPA(metric=metric.with_feedback, auto=settings["auto"],
                                      max_metric_calls=settings.get("max_metric_calls"), reflection_lm=prompt_lm,
                                      num_threads=1, seed=seed, track_stats=False,
                                      gepa_kwargs={"stop_callbacks": [CapStopper(counter, cap)]})
                best = optimizer.compile(program, trainset=data["train"], valset=data["val"])
        except CallCapReached as exc:  # the cap fell before MIPRO had a program to return: the seed stands
            error = f"{exc} before {name} returned a program; the seed program is scored"
            best = program
    wall = time.perf_counter() - started
    calls, refused = counter.calls, counter.refused
    # Scoring after the optimisation, outside the cap, on its own counter.
    scoring = Counter()
    score_lm = make_lm(api_base, scoring, temperature=0.0, max_tokens=256)
    val = score(best, data["val"], metric, score_lm)
    test = score(best, data["test"], metric, score_lm)
    return {"optimizer": name, "settings": settings, "calls": calls, "refused_calls": refused,
            "over_cap": (calls - cap) if cap is not None and calls > cap else 0,
            "stopped_by_cap": cap is not None and (calls >= cap or refused > 0), "wall_s": round(wall, 1),
            "scoring_calls": scoring.calls, "best_val": val["mean"], "best_test": test["mean"],
            "val_errors": val["errors"], "test_errors": test["errors"], "per_task_test": test["per_task"],
            "program": describe_program(best), "error": error}


def run_all(names: list[str], data: dict[str, list[Any]], metric: Metric, server: Server, args: argparse.Namespace,
            cap: int | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The seed program on val and test, then each optimiser with its result scored the same way."""
    from agentforge.evaluation.comparison import compare_paired

    api_base = server.api_base
    seed_counter = Counter()
    seed_lm = make_lm(api_base, seed_counter, temperature=0.0, max_tokens=256)
    started = time.perf_counter()
    seed_val = score(make_program(args.program), data["val"], metric, seed_lm)
    seed_test = score(make_program(args.program), data["test"], metric, seed_lm)
    seed_wall = time.perf_counter() - started
    sys.stderr.write(f"seed: val {seed_val['mean']:.3f}, test {seed_test['mean']:.3f} "
                     f"({seed_counter.calls} calls, {seed_wall:.0f} s)\n")
    results: list[dict[str, Any]] = []
    for name in names:
        sys.stderr.write(f"== dspy {name} (cap {cap})\n")
        before = server.requests()
        result = run_optimizer(name, data, metric, api_base, cap, args.quick, args.program, args.seed)
        result["server_requests"] = server.requests() - before  # optimisation and scoring together
        cmp = compare_paired(seed_test["per_task"], result["per_task_test"], rng=random.Random(args.seed),
                             level=0.9, resamples=2000)
        result["test"] = {"n": cmp.n, "diff": round(cmp.mean_diff, 4), "ci_low": round(cmp.ci_low, 4),
                          "ci_high": round(cmp.ci_high, 4), "level": cmp.level, "wins": cmp.wins,
                          "losses": cmp.losses, "ties": cmp.ties, "sign_p": round(cmp.sign_p, 4)}
        result["verdict"] = ("improved beyond noise" if cmp.ci_low > 0 else "worse" if cmp.ci_high < 0
                             else "no significant change")
        result.update(seed_val=seed_val["mean"], seed_test=seed_test["mean"], quick=args.quick)
        sys.stderr.write(f"   test {seed_test['mean']:.3f} -> {result['best_test']:.3f} ({cmp.describe()}), "
                         f"{result['calls']} calls, {result['wall_s']:.0f} s\n")
        results.append(result)
    seed = {"val": seed_val["mean"], "test": seed_test["mean"], "calls": seed_counter.calls,
            "errors": seed_val["errors"] + seed_test["errors"], "wall_s": round(seed_wall, 1)}
    return seed, results


# -- orchestration ---------------------------------------------------------------------------------------
def matched_row(match: str) -> dict[str, Any] | None:
    if not EVOLVE_RESULTS.is_file():
        return None
    suite, _, optimizer = match.partition("/")
    rows = json.loads(EVOLVE_RESULTS.read_text(encoding="utf-8")).get("rows") or []
    return next((r for r in rows if r.get("suite") == suite and r.get("optimizer") == optimizer
                 and "error" not in r), None)


def main() -> None:
    if sys.argv[1:2] == [SERVE_FLAG]:
        serve(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--optimizers", default="mipro,gepa")
    parser.add_argument("--cap", type=int, default=None, help="LLM calls per optimisation (default: the matched "
                                                              "agentforge row's total calls)")
    parser.add_argument("--match", default="arithmetic/reflect", help="the agentforge row in results/evolve.json")
    parser.add_argument("--program", choices=("predict", "cot"), default="predict")
    parser.add_argument("--train", type=int, default=None)
    parser.add_argument("--val", type=int, default=None)
    parser.add_argument("--test", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads in the server")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="6 train / 6 val / 6 test, minimal settings")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    names = [n.strip() for n in args.optimizers.split(",") if n.strip()]
    if not names or any(n not in ("mipro", "gepa") for n in names):
        parser.error("--optimizers takes mipro and/or gepa")
    missing = missing_server_modules()
    if missing:
        sys.stderr.write("llama_cpp.server cannot start: missing " + ", ".join(missing) + ". Install them with "
                         f"pip install {' '.join(missing)} (llama-cpp-python's `server` extra)\n")
        sys.exit(2)

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE))
    os.chdir(ROOT)
    from machine import machine_info

    from agentforge.config import get_settings
    from agentforge.llm.weights import resolve_weights

    info = machine_info()
    settings = get_settings()
    gguf = resolve_weights(settings.local, settings.models_dir)
    row = matched_row(args.match)
    sizes = dict(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    if not args.quick and row is not None and not row.get("quick") and row.get("splits"):
        sizes.update({k: row["splits"].get(k) for k in ("train", "val", "test")})
    sizes.update({k: v for k, v in (("train", args.train), ("val", args.val), ("test", args.test)) if v})
    cap = args.cap if args.cap is not None else (row["spent"]["total"]["calls"] if row else None)
    env, tasks = load_splits(sizes)
    data = {split: examples(ts) for split, ts in tasks.items()}
    metric = Metric(env, [t for ts in tasks.values() for t in ts])
    import dspy

    scratch = Path(tempfile.mkdtemp(prefix="agentforge-bench-dspy-"))
    try:
        with Server(gguf, scratch / "server.log", args.threads, n_ctx=4096) as server:
            seed, results = run_all(names, data, metric, server, args, cap)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report = {
        "benchmark": "dspy_baselines", "quick": args.quick, "machine": info, "dspy": dspy.__version__,
        "model": {"gguf": gguf.name, "served_by": "llama_cpp.server (OpenAI-compatible, loopback)",
                  "threads": args.threads, "n_ctx": 4096},
        "suite": "arithmetic", "program": args.program, "instruction": INSTRUCTION,
        "splits": {k: len(v) for k, v in tasks.items()}, "task_ids": {k: [t.id for t in v] for k, v in tasks.items()},
        "call_cap": cap, "matched": ({"row": args.match, "quick": row.get("quick"),
                                      "calls": row["spent"]["total"]["calls"], "splits": row.get("splits")}
                                     if row else None),
        "cap_rule": "call_cap counts every LLM call dspy makes while optimising (task runs, bootstrapping, "
                    "proposals, reflections, adapter retries); scoring the seed and the result on val and test "
                    "is outside it (scoring_calls). GEPA stops itself at the cap between iterations; MIPROv2's LM "
                    "refuses calls past it.",
        "seed": seed, "rows": results,
    }
    report["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    shown = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
    sys.stdout.write(f"written to {shown}\n")


if __name__ == "__main__":
    main()
