"""Benchmark the embedded local model: load time, prompt and generation speed, short-answer latency.

Each configuration runs in a fresh subprocess (libgomp reads OMP_WAIT_POLICY once, when it loads):
n_threads 1 and 2; idle, and busy with a CPU-burning competitor pinned to the last core; OMP_WAIT_POLICY
unset (libgomp's default) and PASSIVE. Configurations are interleaved over several rounds and each figure
is the median over rounds, so a burst of unrelated activity spoils one sample, not one configuration.
"other CPU" is the CPU time used by processes other than ours while a configuration ran, as a fraction
of one core (0 on a quiet machine). Writes benchmarks/results/local_model.json and prints a table.
No timed assertions: the numbers are for reading.

    .venv/bin/python benchmarks/bench_local_model.py [--quick] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "local_model.json"
WORKER_TIMEOUT_S = 420.0
BURN_LIMIT_S = 900  # the competitor stops by itself even if this script dies
THREADS = (1, 2)
LOADS = ("idle", "busy")
POLICIES = ("unset", "PASSIVE")
METRICS = ("load_s", "prompt_tokens_per_s", "gen_tokens_per_s", "short_answer_s", "peak_rss_mb",
           "other_cpu_frac")

BURNER = "import time\nend = time.monotonic() + {limit}\nwhile time.monotonic() < end:\n    pass\n"
PROMPT_FILLER = (
    "The quick brown fox jumps over the lazy dog while the curious cat watches from the old wooden fence. "
)
SHORT_QUESTIONS = [f"What is {a} + {b}? Answer with just the number." for a, b in
                   [(2, 3), (7, 5), (9, 9), (14, 6), (21, 8), (3, 30), (12, 12)]]


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def run_worker(threads: int, quick: bool) -> dict[str, Any]:
    """Measure one configuration in this process; the caller has set OMP_WAIT_POLICY (or not)."""
    import llama_cpp  # noqa: F401  imported first, so agentforge leaves OMP_WAIT_POLICY as the caller set it

    sys.path.insert(0, str(ROOT))
    from agentforge.config import get_settings
    from agentforge.llm.local import GenerationParams, get_local_model

    base = get_settings()
    settings = base.model_copy(update={"local": base.local.model_copy(update={"n_threads": threads})})
    model = get_local_model(settings)
    llama = model.llama
    out: dict[str, Any] = {"load_s": round(model.load_seconds, 4),
                           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}

    # Prompt processing: a fresh ~300-token prompt, KV cache cleared so nothing is reused.
    pp_rates: list[float] = []
    for i in range(2 if quick else 3):
        prompt = f"Note {i}. " + PROMPT_FILLER * 12 + "Summarise the text above in one word:"
        llama.reset()
        started = time.perf_counter()
        result = llama.create_completion(prompt=prompt, max_tokens=1, temperature=0.0)
        elapsed = time.perf_counter() - started
        pp_rates.append(result["usage"]["prompt_tokens"] / elapsed)
    out["prompt_tokens_per_s"] = _median(pp_rates)

    # Generation: time between the first and the last streamed token, so the prompt is excluded.
    gen_rates: list[float] = []
    for i in range(1 if quick else 2):
        llama.reset()
        stamps: list[float] = []
        prompt = f"Run {i}. Count from 1 to 200, separated by commas: 1, 2, 3,"
        for _chunk in llama.create_completion(prompt=prompt, max_tokens=48, temperature=0.0, stream=True):
            stamps.append(time.perf_counter())
        if len(stamps) > 1:
            gen_rates.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
    out["gen_tokens_per_s"] = _median(gen_rates)

    # Short answers through the library's own path (chat template, lock, prefix reuse across calls).
    latencies: list[float] = []
    answers: list[str] = []
    for question in SHORT_QUESTIONS[: 3 if quick else 7]:
        started = time.perf_counter()
        done = model.complete([{"role": "user", "content": question}],
                              GenerationParams(temperature=0.0, max_tokens=8))
        latencies.append(time.perf_counter() - started)
        answers.append(done.texts[0])
    out["short_answer_s"] = _median(latencies)
    out["short_answers"] = answers
    with open("/proc/self/status", encoding="ascii") as fh:
        rss = next((line.split()[1] for line in fh if line.startswith("VmHWM:")), None)
    out["peak_rss_mb"] = round(int(rss) / 1024) if rss else None
    return out


def _machine_busy_s() -> float:
    """Non-idle CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _start_burner() -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", BURNER.format(limit=BURN_LIMIT_S)])
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(proc.pid, {(os.cpu_count() or 1) - 1})
    time.sleep(0.2)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_config(threads: int, load: str, policy: str, quick: bool) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy != "unset":
        env["OMP_WAIT_POLICY"] = policy
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--threads", str(threads)]
    cmd += ["--quick"] if quick else []
    busy_before, ours_before = _machine_busy_s(), _children_cpu_s()
    burner = _start_burner() if load == "busy" else None
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S,
                              check=False)
        if proc.returncode != 0:
            result: dict[str, Any] = {"error": proc.stderr.strip().splitlines()[-1:]}
        else:
            result = json.loads(proc.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        result = {"error": f"timed out after {WORKER_TIMEOUT_S:.0f} s"}
    finally:
        if burner is not None:
            _stop(burner)
    wall = time.perf_counter() - started
    # What the machine did minus what our worker and burner did (both reaped by now).
    other = (_machine_busy_s() - busy_before) - (_children_cpu_s() - ours_before)
    result["wall_s"] = round(wall, 2)
    result["other_cpu_frac"] = round(max(other, 0.0) / wall, 2)
    return result


def _summarise(samples: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [s for s in samples if "error" not in s]
    summary: dict[str, Any] = {m: _median([s[m] for s in ok if s.get(m) is not None]) for m in METRICS}
    summary["errors"] = [s["error"] for s in samples if "error" in s]
    summary["short_answers"] = ok[0]["short_answers"] if ok else []
    summary["samples"] = samples
    return summary


def _fmt(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, int | float) else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions inside each run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds over all configurations")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        sys.stdout.write(json.dumps(run_worker(args.threads, args.quick)) + "\n")
        return

    sys.path.insert(0, str(ROOT))
    from agentforge.config import get_settings
    from agentforge.llm.weights import resolve_weights

    settings = get_settings()
    started = time.perf_counter()
    path = resolve_weights(settings.local, settings.models_dir)  # assemble/verify outside the timings
    resolve_s = time.perf_counter() - started

    configs = [(t, load, policy) for t in THREADS for load in LOADS for policy in POLICIES]
    samples: dict[tuple[int, str, str], list[dict[str, Any]]] = {c: [] for c in configs}
    for rnd in range(1, args.rounds + 1):
        for config in configs:
            sample = run_config(*config, quick=args.quick)
            samples[config].append(sample)
            sys.stderr.write(f"round {rnd}/{args.rounds}: {config[0]} thread(s), {config[1]}, "
                             f"OMP_WAIT_POLICY {config[2]}: {sample['wall_s']} s\n")

    rows = [{"n_threads": c[0], "load": c[1], "omp_wait_policy": c[2], **_summarise(samples[c])}
            for c in configs]
    report = {
        "model_path": str(path),
        "resolve_weights_s": round(resolve_s, 4),
        "rounds": args.rounds,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "loadavg_at_end": os.getloadavg()},
        "notes": "medians over rounds; busy = a busy-loop process pinned to the last CPU; other_cpu_frac = "
                 "CPU used by unrelated processes during the run, in cores",
        "results": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    header = (f"{'threads':>7} {'load':>5} {'OMP_WAIT':>8} {'load s':>7} {'pp tok/s':>9} {'gen tok/s':>9} "
              f"{'short s':>8} {'RSS MB':>7} {'other CPU':>9}")
    lines = [header, "-" * len(header)]
    for r in rows:
        line = (f"{r['n_threads']:>7} {r['load']:>5} {r['omp_wait_policy']:>8} {_fmt(r['load_s'], '7.2f')} "
                f"{_fmt(r['prompt_tokens_per_s'], '9.1f')} {_fmt(r['gen_tokens_per_s'], '9.1f')} "
                f"{_fmt(r['short_answer_s'], '8.3f')} {_fmt(r['peak_rss_mb'], '7.0f')} "
                f"{_fmt(r['other_cpu_frac'], '9.2f')}")
        lines.append(line + (f"  errors: {r['errors']}" if r["errors"] else ""))
    sys.stdout.write("\n".join(lines) + f"\n\nwritten to {RESULTS.relative_to(ROOT)}\n")


if __name__ == "__main__":
    main()
