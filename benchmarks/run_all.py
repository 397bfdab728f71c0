"""Run the benchmarks, then regenerate benchmarks/README.md from every JSON file in benchmarks/results/.

    .venv/bin/python benchmarks/run_all.py                 # engine + start-up (what `make bench` runs)
    .venv/bin/python benchmarks/run_all.py --with-local    # also the local-model benchmark (minutes)
    .venv/bin/python benchmarks/run_all.py --quick         # few repetitions, a smoke run
    .venv/bin/python benchmarks/run_all.py --readme-only   # only rewrite the README from existing results
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"


def run_benchmarks(with_local: bool, quick: bool) -> list[str]:
    """Run each benchmark in its own process; return the names of those that failed to run."""
    jobs: list[tuple[str, list[str]]] = [
        ("bench_engine", ["--quick"] if quick else []),
        ("bench_startup", ["--runs", "3"] if quick else []),
        ("bench_env_server", []),
        ("bench_worker_death", []),
        ("bench_sandbox", ["--runs", "10"] if quick else []),
        ("bench_eval_throughput", ["--tasks", "300", "--repeats", "1"] if quick else []),
        ("bench_memory", ["--quick"] if quick else []),
    ]
    if with_local:
        if (HERE / "bench_local_model.py").is_file():
            jobs.append(("bench_local_model", ["--quick"] if quick else []))
        else:
            sys.stderr.write("--with-local: benchmarks/bench_local_model.py does not exist; skipped\n")
    failed = []
    for name, extra in jobs:
        sys.stderr.write(f"== {name} {' '.join(extra)}\n")
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *extra], check=False)
        sys.stderr.write(f"== {name}: exit {proc.returncode} after {time.perf_counter() - started:.1f} s\n")
        if proc.returncode != 0:
            failed.append(name)
    return failed


# -- README ------------------------------------------------------------------------------------------
def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / name
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        sys.stderr.write(f"{path}: not valid JSON ({exc}); left out of the README\n")
        return None


def _verdict(ok: bool) -> str:
    return "**pass**" if ok else "**FAIL**"


def _num(value: Any, spec: str = ".3f") -> str:
    return format(value, spec) if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def _in_out(stats: dict[str, Any]) -> str:
    return (f"{_num(stats.get('inside_nodes_per_node_us'), '.0f')} / "
            f"{_num(stats.get('outside_nodes_per_node_us'), '.0f')}")


def _machine(m: dict[str, Any]) -> str:
    parts = [f"{m.get('nproc')} CPUs"]
    if m.get("cpu"):
        parts.append(str(m["cpu"]))
    parts.append(f"Python {m.get('python')}")
    if m.get("langgraph"):
        parts.append(f"langgraph {m['langgraph']}")
    if m.get("loadavg_at_start"):
        parts.append(f"load average at start {m['loadavg_at_start'][0]}")
    if m.get("code_fingerprint"):
        parts.append(f"agentforge sources {m['code_fingerprint']}")
    return ", ".join(parts) + f"; run {m.get('date', '?')}"


def engine_section(data: dict[str, Any]) -> list[str]:
    targets = data["targets"]
    lines = [
        "## Engine overhead per node",
        "",
        "One invoke of an agentforge workflow (`await Workflow.arun(inputs, save=False)`) against a",
        "hand-written LangGraph `StateGraph` of the same shape, both calling the same zero-latency scripted",
        "model's `acomplete`. Per node = median wall time of one invoke / number of nodes. Engine and",
        "baseline run interleaved in one event loop, so the **ratio** is the number to read here.",
        "Every invoke has a unique input and every reply is unique, so the response cache never hits.",
        f"Machine: {_machine(data['machine'])}.",
        "",
    ]
    rows = []
    for s in data["shapes"]:
        e, b = s["engine"], s["baseline"]
        rows.append([
            s["shape"], str(s["nodes"]), str(s["reps"]),
            _num(e["per_node_median_ms"]), _num(e["per_node_p90_ms"]),
            _num(b["per_node_median_ms"]), _num(b["per_node_p90_ms"]),
            _num(s["ratio"], ".2f"), _num(s["added_per_node_us"], ".0f"),
            _in_out(e), _in_out(b),
            f"{_verdict(s['pass_per_node'])} / {_verdict(s['pass_ratio'])}",
        ])
    lines += _table(["shape", "nodes", "reps", "engine ms/node (median)", "engine p90", "baseline ms/node",
                     "baseline p90", "ratio", "added µs/node", "engine µs/node in / out of nodes",
                     "baseline µs/node in / out", "≤ 1 ms / ≤ 1.5x"], rows)
    lines += [
        "",
        "*in / out of nodes*: time inside node functions (engine: its own `NodeTrace.latency_s`) and the",
        "rest of the invoke (LangGraph's loop, plus the engine's per-run set-up).",
        "",
        "### With `save=True` (what `agentforge run` does)",
        "",
        "SQLite checkpointer, `run.json` and `trace.json` per run. `baseline + sqlite` is the hand-written",
        "graph compiled once with an `AsyncSqliteSaver` kept open, the natural durable equivalent.",
        "",
    ]
    rows = []
    for s in data["shapes"]:
        sv = s["save"]
        rows.append([s["shape"], str(sv["reps"]), _num(sv["engine"]["per_node_median_ms"]),
                     _num(sv["engine"]["per_node_p90_ms"]), _num(sv["baseline_sqlite"]["per_node_median_ms"]),
                     _num(sv["baseline"]["per_node_median_ms"]), _num(sv["ratio_vs_baseline_sqlite"], ".2f"),
                     _num(sv["ratio_vs_baseline"], ".2f")])
    lines += _table(["shape", "reps", "engine save=True ms/node", "p90", "baseline + sqlite ms/node",
                     "baseline ms/node", "ratio vs baseline + sqlite", "ratio vs baseline"], rows)
    lines += ["", "### Targets", ""]
    per_node, ratio = targets["per_node_median_ms"], targets["ratio_vs_langgraph"]
    lines += _table(["target", "goal", "worst measured", "result"], [
        ["engine overhead per node (median, save=False)", f"≤ {per_node['target']} ms",
         f"{_num(per_node['worst'])} ms", _verdict(per_node["pass"])],
        ["engine / hand-written LangGraph, same shape", f"≤ {ratio['target']}x",
         f"{_num(ratio['worst'], '.2f')}x", _verdict(ratio["pass"])],
    ])
    observations = data.get("observations") or {}
    if observations:
        notes = "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in observations.items())
        lines += ["", f"Observations: {notes}."]
    before = _load("engine_overhead_before.json")
    if before:
        lines += _before_and_after(before, data)
    return [*lines, ""]


def _before_and_after(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The same benchmark on the code before the issue-12 restructuring, run on the same machine just before
    the current results: absolute figures move with the machine, the ratios are what to compare."""
    old = {s["shape"]: s for s in before["shapes"]}
    rows = [[s["shape"], _num(old[s["shape"]]["engine"]["per_node_median_ms"]),
             _num(old[s["shape"]]["ratio"], ".2f"), _num(s["engine"]["per_node_median_ms"]), _num(s["ratio"], ".2f")]
            for s in after["shapes"] if s["shape"] in old]
    return ["", "### Before and after the issue-12 restructuring, same machine",
            "",
            "`results/engine_overhead_before.json`: commit 0c1e334 (before), measured on "
            f"{_machine(before['machine'])}.",
            "On this machine LangGraph's own one-node invoke takes over 1 ms, so the absolute per-node target",
            "fails for `chain-1` before and after alike; the ratio to hand-written LangGraph is unchanged.",
            "", *_table(["shape", "before ms/node", "before ratio", "after ms/node", "after ratio"], rows)]


def startup_section(data: dict[str, Any]) -> list[str]:
    imp, val, targets = data["import"], data["validate"], data["targets"]
    inproc = val["in_process"]
    lines = [
        "## Start-up",
        "",
        f"Fresh processes, median of {data['runs']}, commands run round-robin. Wall times include the",
        "interpreter's own start-up (shown on the first row). The 50-node workflow is generated by",
        f"`bench_startup.py --print-workflow`: {val['workflow']['shape']}.",
        f"Machine: {_machine(data['machine'])}.",
        "",
    ]
    lines += _table(["measurement", "seconds"], [
        ["`python -c pass` (interpreter only)", _num(data["python_bare_wall_s"])],
        ["`import agentforge` (in process)", _num(imp["in_process_s"])],
        ["`python -c 'import agentforge'` (whole process)", _num(imp["process_wall_s"])],
        ["`agentforge --help` (whole process)", _num(data["cli_help_wall_s"])],
        ["`agentforge validate` 50 nodes (whole process)", _num(val["cli_wall_s"])],
        ["  in process: imports (loader + validate)", _num(inproc["import_s"])],
        ["  in process: first load / first check", f"{_num(inproc['first_load_s'])} / "
                                                   f"{_num(inproc['first_check_s'])}"],
        ["  in process: warm load / warm check", f"{_num(inproc['warm_load_s'])} / "
                                                  f"{_num(inproc['warm_check_s'])}"],
    ])
    heavy = ", ".join(imp["heavy_loaded"]) or "none"
    checked = ", ".join(targets["import_has_no_heavy_modules"]["target"])
    lines += ["", f"Heavy libraries loaded by `import agentforge`: {heavy} (checked: {checked})."]
    slow = val.get("slowest_imports") or []
    if slow:
        lines += ["", "Slowest imports behind `agentforge validate` (`-X importtime`, cumulative): " +
                  ", ".join(f"{r['module']} {r['cumulative_ms']:.0f} ms" for r in slow[:8]) + "."]
    lines += ["", "### Targets", ""]
    lines += _table(["target", "goal", "measured", "result"], [
        ["`import agentforge`", f"≤ {targets['import_s']['target']} s",
         f"{_num(targets['import_s']['value'])} s", _verdict(targets["import_s"]["pass"])],
        ["`import agentforge` loads no heavy library", "none", ", ".join(imp["heavy_loaded"]) or "none",
         _verdict(targets["import_has_no_heavy_modules"]["pass"])],
        ["`agentforge validate` on 50 nodes, whole process", f"≤ {targets['validate_50_wall_s']['target']} s",
         f"{_num(targets['validate_50_wall_s']['value'])} s",
         _verdict(targets["validate_50_wall_s"]["pass"])],
    ])
    return [*lines, ""]


_CASE_LABELS = {
    "two_node_ideal": "2-node, same-prefix ideal (all node-1 calls, then all node-2 calls)",
    "two_node_c1": "2-node, concurrency 1",
    "two_node_c4": "2-node, concurrency 4",
    "two_node_c8": "2-node, concurrency 8",
    "two_node_c1_prefix_off": "2-node, concurrency 1, saved prefixes off (before)",
    "demos8_prefix_on": "1 node, 8 demos, saved prefixes on",
    "demos8_prefix_off": "1 node, 8 demos, saved prefixes off",
    "candidates_sequential": "2 candidates, one after the other",
    "candidates_concurrent": "2 candidates, concurrently in one process",
    "sampling_n1": "self-consistency node, n=1",
    "sampling_n5": "self-consistency node, n=5",
}
_FIRST_CALL_LABELS = {
    ("first_call_cold", "first_call"): "first call, fresh home (cold)",
    ("first_call_cold", "reused_call"): "second call, same prefix (reused)",
    ("first_call_warm", "first_call"): "first call of a second process, disk warmed",
    ("first_call_warm", "first_call_after_reload"): "first call after unload + reload in that process",
}
_GOAL_LABELS = {
    "two_node_c1_over_ideal": "2-node workflow at concurrency 1 / same-prefix ideal",
    "two_candidates_concurrent_over_sequential": "two candidates concurrently / one after the other",
    "n5_over_n1": "`n=5` / `n=1`",
    "warm_first_call_over_reused_call": "a re-run's first call / a reused-prefix call",
}


def _local_cases(data: dict[str, Any]) -> list[str]:
    cases, ratios, goals = data.get("cases") or {}, data.get("ratios") or {}, data.get("goals") or {}
    cs = data.get("case_settings") or {}
    lines = [
        "### Issue-14 cases through the engine",
        "",
        f"Workflows evaluated with `aevaluate` on {data.get('tasks')} generated arithmetic tasks (the n=5 case on "
        f"{cs.get('sampling_tasks', '?')}), response cache off. Each row ran in its own process with its own "
        "`settings.home`, so no row warmed another's saved prefixes (the second-process first call reuses the "
        "cold row's home on purpose). Each 2-node node sends about 450 prompt tokens (instruction and demos, "
        f"distinct per node) and answers in at most {cs.get('max_tokens', '?')} tokens; candidates and the "
        f"8-demo node run at concurrency {cs.get('candidate_concurrency', '?')}; the n=5 node samples at "
        f"temperature {cs.get('sampling_temperature', '?')}, up to {cs.get('sampling_max_tokens', '?')} tokens.",
        "*reused*: prompt tokens the report says were read from a kept prefix; *llama.cpp evaluated*: prompt "
        "tokens llama.cpp's own counters saw evaluated (batched decoding of n answers counts there too); "
        "*model busy*: llama.cpp's prompt and generation time / wall; *of raw limit*: the time the raw model "
        "(1 thread, idle) needs for the evaluated and generated tokens / wall.",
    ]
    if data.get("quick"):
        lines += ["", "**A `--quick` dry run: too few tasks for the ratios to mean much.**"]
    lines.append("")
    rows = []
    for name, r in cases.items():
        if name in ("first_call_cold", "first_call_warm"):
            continue
        label = _CASE_LABELS.get(name, name)
        if "error" in r:
            rows.append([label, f"error: {r['error']}", *[""] * 10])
            continue
        rows.append([label, str(r.get("tasks")), str(r.get("llm_calls")), _num(r.get("wall_s"), ".1f"),
                     _num(r.get("tasks_per_s"), ".3f"), _num(r.get("s_per_call"), ".3f"),
                     _num(r.get("prompt_tokens"), "d"),
                     _num(r.get("reused_prompt_tokens"), "d"), _num(r.get("llama_prompt_tokens_evaluated"), "d"),
                     _num(r.get("model_busy_frac"), ".2f"), _num(r.get("of_raw_limit"), ".2f"), str(r.get("errors"))])
    lines += _table(["case", "tasks", "LLM calls", "wall s", "tasks/s", "s/call", "prompt tokens", "reused",
                     "llama.cpp evaluated", "model busy", "of raw limit", "errors"], rows)
    first_rows = []
    for (name, part), label in _FIRST_CALL_LABELS.items():
        r = (cases.get(name) or {}).get(part)
        if r:
            first_rows.append([label, _num(r.get("wall_s"), ".3f"), _num(r.get("prompt_tokens"), "d"),
                               _num(r.get("reused_prompt_tokens"), "d"),
                               _num(r.get("llama_prompt_tokens_evaluated"), "d")])
        elif "error" in (cases.get(name) or {}):
            first_rows.append([label, f"error: {cases[name]['error']}", "", "", ""])
    if first_rows:
        lines += ["", "Warm start (the 8-demo node, one task per call):", ""]
        lines += _table(["call", "seconds", "prompt tokens", "reused", "llama.cpp evaluated"], first_rows)
    if goals:
        lines += ["", "Goals (issue 14):", ""]
        lines += _table(["goal", "target", "measured", "result"],
                        [[_GOAL_LABELS.get(k, k), f"≤ {g['target']}x", f"{_num(g['value'], '.2f')}x",
                          _verdict(bool(g["pass"]))] for k, g in goals.items()])
    extra = [("2-node at concurrency 4 / ideal", "two_node_c4_over_ideal"),
             ("2-node at concurrency 8 / ideal", "two_node_c8_over_ideal"),
             ("2-node at concurrency 1 with saved prefixes off / ideal", "two_node_c1_prefix_off_over_ideal"),
             ("8-demo node, saved prefixes off / on", "demos8_prefix_off_over_on"),
             ("cold first call / reused-prefix call", "cold_first_call_over_reused_call")]
    shown = [f"- {label}: {_num(ratios.get(key), '.2f')}x" for label, key in extra if ratios.get(key) is not None]
    same = ratios.get("greedy_answers_same_with_prefixes_off")
    if same is not None:
        shown.append(f"- Greedy answers of the 2-node workflow identical with saved prefixes on and off: "
                     f"{'yes' if same else '**no**'}")
    if shown:
        lines += ["", *shown]
    return lines


_DEFAULTS_LABELS = {
    "inline_1t": "inline (asyncio), 1 thread, PASSIVE (the default before issue 14)",
    "inline_2t_passive": "inline, 2 threads, PASSIVE",
    "inline_2t_active": "inline, 2 threads, ACTIVE",
    "processes_2x1t": "process executor, 2 workers x 1 thread, PASSIVE",
}


def _local_defaults(d: dict[str, Any]) -> list[str]:
    """The thread / wait-policy / worker-count rows and the recommendation drawn from them."""
    arms, rec = d.get("arms") or {}, d.get("recommended") or {}
    lines = [
        "### Defaults: threads, wait policy, worker processes",
        "",
        f"The 2-node workflow on {d.get('tasks')} tasks at concurrency {d.get('concurrency')}, saved prefixes on, "
        "response cache off. Each row in its own process and fresh home, one round; each configuration idle "
        "and then beside a busy loop pinned to the last core (*competitor*). Model load, worker start and a "
        "warm-up evaluation stay outside the timing. *x 1 thread*: tasks/s over the 1-thread inline idle figure. "
        "*other CPU*: cores used by unrelated processes meanwhile. Re-measure alone with "
        "`.venv/bin/python benchmarks/bench_local_model.py --only defaults`.",
    ]
    if d.get("quick"):
        lines += ["", "**A `--quick` dry run: too few tasks for the figures to mean much.**"]
    lines.append("")
    rows = []
    for name, r in arms.items():
        base = name.removesuffix("_busy")
        label = _DEFAULTS_LABELS.get(base, base)
        competitor = "yes" if r.get("competitor") else "no"
        if "error" in r:
            rows.append([label, competitor, f"error: {r['error']}", *[""] * 7])
            continue
        rows.append([label, competitor, str(r.get("omp_wait_policy")), _num(r.get("wall_s"), ".1f"),
                     _num(r.get("tasks_per_s"), ".3f"), _num(r.get("over_inline_1t"), ".2f"),
                     _num(r.get("s_per_call"), ".3f"), _num(r.get("reused_prompt_tokens"), "d"),
                     _num(r.get("other_cpu_frac"), ".2f"), str(r.get("errors"))])
    lines += _table(["configuration", "competitor", "wait policy (seen)", "wall s", "tasks/s", "x 1 thread",
                     "s/call", "reused", "other CPU", "errors"], rows)
    if rec:
        held = ", ".join(rec.get("held_under_load") or []) or "none"
        collapsed = ", ".join(rec.get("collapsed_under_load") or []) or "none"
        lines += ["", f"**Recommended: {_DEFAULTS_LABELS.get(rec.get('config', ''), rec.get('config'))}** "
                      f"({_num(rec.get('idle_tasks_per_s'), '.3f')} tasks/s idle, "
                      f"{_num(rec.get('idle_over_inline_1t'), '.2f')}x the 1-thread default; "
                      f"{_num(rec.get('busy_over_inline_1t_busy'), '.2f')}x the 1-thread default beside the "
                      f"competitor): {rec.get('why')}. Held under load (>= {d.get('holds_under_load_share')} of "
                      "the 1-thread figure, both beside the competitor): "
                      f"{held}; collapsed: {collapsed}."]
    lines += ["", "**Set from these figures:** `local.n_threads` defaults to the usable cores, at most 2, with "
                  "`OMP_WAIT_POLICY=PASSIVE` (inline, 2 threads: 1.60x idle, and no collapse beside the "
                  "competitor), and the process executor gives each worker its share of the cores (2 workers x "
                  "1 thread here, the recommended row). The inline executor stays `agentforge eval`'s default: "
                  "one process, one model in memory, and within 5% of the recommended row idle."]
    return lines


def local_model_section(data: dict[str, Any] | None) -> list[str]:
    lines = ["## Local model (Qwen2.5-Coder-0.5B via llama.cpp)", ""]
    if data is None:
        return [*lines, "Not run yet: `.venv/bin/python benchmarks/run_all.py --with-local` (needs the",
                "`local` extra; several minutes) writes `results/local_model.json`.", ""]
    machine = data.get("machine") or {}
    lines += [
        "Each configuration in a fresh process; *busy* = a CPU-burning process pinned to the last core.",
        f"Machine: {machine.get('cpus', '?')} CPUs, Python {machine.get('python', '?')}. "
        f"Weights resolved in {_num(data.get('resolve_weights_s'), '.2f')} s.",
    ]
    if data.get("notes"):
        lines += ["", str(data["notes"])]
    lines.append("")
    rows = []
    for r in data.get("results") or []:
        if "error" in r:
            rows.append([str(r.get("n_threads")), str(r.get("load")), str(r.get("omp_wait_policy", r.get("policy"))),
                         f"error: {r['error']}", "", "", "", "", ""])
            continue
        rows.append([str(r.get("n_threads")), str(r.get("load")), str(r.get("omp_wait_policy", r.get("policy"))),
                     _num(r.get("load_s"), ".2f"),
                     _num(r.get("prompt_tokens_per_s"), ".1f"), _num(r.get("gen_tokens_per_s"), ".1f"),
                     _num(r.get("short_answer_s"), ".3f"), _num(r.get("peak_rss_mb"), "d"),
                     _num(r.get("other_cpu_frac"), ".2f")])
    if rows:
        lines += _table(["n_threads", "load", "wait policy", "load s", "prompt tok/s", "gen tok/s",
                         "short answer s", "peak RSS MB", "other CPU (cores)"], rows)
    else:
        lines.append("No raw-limit figures in this results file.")
    if data.get("cases"):
        lines += ["", *_local_cases(data)]
    if data.get("defaults"):
        lines += ["", *_local_defaults(data["defaults"])]
    if machine.get("code_fingerprint"):
        lines += ["", _machine(machine)]
    return [*lines, ""]


def env_server_section(data: dict[str, Any] | None) -> list[str]:
    lines = ["## Environment server", ""]
    if not data:
        return [*lines, "No results yet: run `benchmarks/bench_env_server.py`.", ""]
    lines += [
        f"A trivial environment served by `agentforge env serve`'s app on loopback, {data['concurrency']} "
        f"concurrent sessions, {data['steps']} steps in all. Target: >= {data['target_steps_per_s']:.0f} steps/s.",
        "",
    ]
    rows = [[name, _num(run["steps_per_s"], ".0f"), _num(run["ratio_to_target"], ".2f"),
             str(run.get("client_cpu_us_per_step", run.get("process_cpu_us_per_step", ""))),
             _verdict(bool(run["pass"]))] for name, run in data["runs"].items()]
    lines += _table(["client / server", "steps/s", "x target", "client µs CPU/step", "target"], rows)
    return [*lines, "", _machine(data.get("machine", {})), ""]


def eval_throughput_section(data: dict[str, Any] | None) -> list[str]:
    lines = ["## Evaluation throughput", ""]
    if not data:
        return [*lines, "No results yet: run `benchmarks/bench_eval_throughput.py`.", ""]
    if "rows" not in data:
        return [*lines, "The result file predates the side-by-side layout: re-run `bench_eval_throughput.py`.", ""]
    w, targets, rows = data["workers"], data["targets"], data["rows"]
    lines += [
        f"{data['tasks']} single-call tasks at concurrency {data['concurrency']} through litellm's real HTTP path "
        f"to a stub OpenAI-compatible server (benchmarks/stub_openai.py, another process on 127.0.0.1) that "
        f"answers after {data['server_delay_s']} s: at best {data['ideal_tasks_per_s']:.0f} tasks/s. Every row "
        "ran in one session against the same stub. The ceilings contain no agentforge code: a bare aiohttp "
        "client, and bare `litellm.acompletion` calls (priced like a small hosted model, as the agentforge "
        "rows are). The cached rows re-run the same evaluation from the gateway's disk cache. The agentforge "
        f"rows run with `eval_gc_threshold` = {data.get('eval_gc_threshold', '?')}: at Python's default of 700, "
        "garbage collection over the episodes in flight cost 25-35% of the throughput (measured: 0 in the "
        "setting gave 97 / 922 / 126 / 1,286 tasks/s on the four agentforge rows).",
        "",
    ]
    labels = {
        "ceiling_bare_http": "ceiling: bare aiohttp, 1 process",
        "ceiling_bare_litellm_1_process": "ceiling: bare litellm, 1 process",
        f"ceiling_bare_litellm_{w}_processes": f"ceiling: bare litellm, {w} processes",
        "agentforge_asyncio_first_run": "agentforge, asyncio executor, first run",
        "agentforge_asyncio_cached": "agentforge, asyncio executor, cached re-run",
        f"agentforge_{w}_processes_first_run": f"agentforge, {w} worker processes, first run",
        f"agentforge_{w}_processes_cached": f"agentforge, {w} worker processes, cached re-run",
        "agentforge_ray_first_run": f"agentforge, Ray ({w} local workers), first run",
    }
    table = [[labels.get(name, name), _num(row["tasks_per_s"], ".1f"),
              " / ".join(_num(x, ".0f") for x in row.get("tasks_per_s_runs", [])) or "-",
              "-" if "cached_calls" in row else f"{row['fraction_of_ideal']:.0%}",  # the ideal bounds HTTP runs only
              str(row.get("http_calls", "-")), str(row.get("errors", "-"))] for name, row in rows.items()]
    first = rows.get(f"agentforge_{w}_processes_first_run", {})
    lines += _table(["run", f"tasks/s (median of {data.get('repeats', 1)})", "each run", "of ideal", "HTTP calls",
                     "errors"], table)
    lines += [
        "",
        f"- agentforge / bare litellm: {data['agentforge_over_bare_litellm_1_process']:.2f} in one process, "
        f"{data[f'agentforge_over_bare_litellm_{w}_processes']:.2f} with {w} processes.",
        f"- First run >= 90% of ideal: {_verdict(bool(targets['first_run_at_least_90pct_of_ideal']))}. "
        f"Bare litellm itself reaches at most {data['best_bare_litellm_fraction_of_ideal']:.0%} of ideal here.",
        f"- Cached re-run >= 1,000 tasks/s with zero HTTP calls: "
        f"{_verdict(bool(targets['cached_at_least_1000_tasks_per_s']) and bool(targets['cached_zero_http_calls']))}.",
        f"- Starting the {w} worker processes (spawn, import litellm and the engine, open clients) took "
        f"{_num(first.get('pool_start_s'), '.1f')} s, outside the timing, as a Ray cluster's start would be.",
        "",
        "Why the first run falls short: each `litellm.acompletion` costs about 4-5 ms of CPU in the calling "
        "process (request building on a thread-pool hop, the OpenAI SDK and httpx layers, cost and logging "
        "bookkeeping). Alone, a call adds about 7 ms to the server's 200 ms; 32 at once in one process wait "
        "for each other's CPU phases (a median 40 ms before the request leaves, measured with a timestamping "
        "stub). Worker processes spread that work, but this machine has 2 cores, shared with the stub. "
        "Separate runs with more workers (`--workers 6`, `--workers 8`) gave bare litellm 136-146 tasks/s "
        "(85-91%) and agentforge 133-142 (83-89%): the target sits at the edge of what litellm alone "
        "reaches here.",
    ]
    return [*lines, "", _machine(data.get("machine", {})), ""]


def worker_death_section(data: dict[str, Any] | None) -> list[str]:
    lines = ["## Process pool: when a worker dies", ""]
    if not data:
        return [*lines, "No results yet: run `benchmarks/bench_worker_death.py`.", ""]
    std, ours = data["concurrent.futures.ProcessPoolExecutor"], data["agentforge ProcessExecutor"]
    lines += [
        f"{data['workers']} worker processes, {data['tasks']} tasks of {data['task_s']} s; after the first result "
        "one worker is killed with SIGKILL.",
        "",
    ]
    rows = [[name, str(row["failed"]), str(row["finished"]), "yes" if row["pool_usable_after"] else "no"]
            for name, row in (("concurrent.futures.ProcessPoolExecutor", std), ("agentforge ProcessExecutor", ours))]
    lines += _table(["pool", "tasks failed", "tasks finished", "usable for the next evaluation"], rows)
    lines += [
        "",
        "Why the process executor is not built on `concurrent.futures.ProcessPoolExecutor`: when one worker dies, "
        "the library marks the whole pool broken, terminates the surviving workers and fails every pending "
        "future, queued ones included, and the pool cannot be used again; it also runs one call per worker at a "
        "time and cannot stream results from inside a call, so concurrent episodes per worker would need a side "
        "channel anyway. `multiprocessing.Pool` loses the task of a dead worker without a word (its result never "
        "arrives). So `evaluation/executors/processes.py` keeps a small pool of its own on `multiprocessing` "
        "primitives (spawned processes, one command and one reply `Connection` each, read from the asyncio loop "
        "with no helper threads): a dead worker fails only the episodes it was running and its share of the "
        "concurrency passes to a survivor.",
    ]
    return [*lines, ""]


def sandbox_section(data: dict[str, Any] | None) -> list[str]:
    lines = ["## Sandbox start-up: what confinement costs per run", ""]
    if not data:
        return [*lines, "No results yet: run `benchmarks/bench_sandbox.py`.", ""]
    lines += [
        f"Fresh processes printing `1`, median of {data['runs']}, variants interleaved round-robin. "
        f"`{data['bwrap_version']}`; the old path is `unshare {data['unshare_flags']}`. "
        "The bwrap row is the sandbox's whole view (allow-listed mounts, new namespaces, uid 65534, no "
        "capabilities); the `run_python` rows are a whole sandboxed run (files, bootstrap with limits, output "
        f"read back){', with the pids cgroup a root caller gets' if data.get('pids_cgroup') else ''}.",
        "",
    ]
    rows = [[name, _num(row["median_ms"], ".1f"), _num(row["p90_ms"], ".1f"), _num(row["min_ms"], ".1f")]
            for name, row in data["startup"].items()]
    lines += _table(["variant", "median ms", "p90 ms", "min ms"], rows)
    added = data["added_over_bare_ms"]
    lines += [
        "",
        f"Added over a bare interpreter (medians): unshare {_num(added['unshare (old path)'], '.1f')} ms, "
        f"bwrap {_num(added['bwrap (allow-listed view)'], '.1f')} ms; bwrap minus unshare "
        f"{_num(data['bwrap_minus_unshare_ms'], '.1f')} ms; a whole confined run minus an unconfined one "
        f"{_num(data['run_python_confined_minus_unconfined_ms'], '.1f')} ms.",
    ]
    return [*lines, "", _machine(data.get("machine", {})), ""]


def _pipe(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _diff_ci(test: dict[str, Any]) -> str:
    return (f"{_num(test.get('diff'), '+.3f')} [{_num(test.get('ci_low'), '+.3f')}, "
            f"{_num(test.get('ci_high'), '+.3f')}]")


def _minutes(seconds: Any) -> str:
    return f"{seconds / 60:.1f} min" if isinstance(seconds, int | float) else "-"


def _quick_tag(row: dict[str, Any]) -> str:
    return " *(quick)*" if row.get("quick") else ""


def evolve_section(data: dict[str, Any] | None) -> list[str]:
    lines = ["## Evolve: seed vs best on held-out tasks (issue 15)", ""]
    if not data or not data.get("rows"):
        return [*lines, "No results yet: run `benchmarks/bench_evolve.py` (hours for the full run; `--quick` for a "
                        "smoke run).", ""]
    rows = data["rows"]
    lines += [
        "`agentforge evolve` from a deliberately plain seed on each suite, with each optimizer, the local model "
        "as executor and optimizer. Seed and best are scored once on the **test** split, which no optimizer saw; "
        "*diff [CI]* is best minus seed with the paired bootstrap interval "
        f"({_num(100 * (rows[0].get('test') or {}).get('level', 0.9), '.0f')}%). Verdict: "
        f"{data.get('verdict_rule', '')}. "
        "*why* is read off the run's own events. Calls count every model call asked for, *fresh* those that "
        "reached the model (the rest came from the response cache).",
        "",
    ]
    table = []
    for r in rows:
        name = f"{r.get('suite')}{_quick_tag(r)}"
        if "error" in r:
            table.append([name, r.get("optimizer", "?"), f"error: {_pipe(r['error'])[:200]}", *[""] * 7])
            continue
        total = r["spent"]["total"]
        table.append([name, r["optimizer"], f"{_num(r['seed_test'])} → {_num(r['best_test'])}", _diff_ci(r["test"]),
                      f"**{r['verdict']}**", _pipe(r["why"]), str(total["calls"]), str(total["fresh_calls"]),
                      f"{total['tokens']:,}", _minutes(r.get("wall_s"))])
    lines += _table(["suite", "optimizer", "test: seed → best", "diff [CI]", "verdict", "why", "calls",
                     "fresh calls", "tokens", "wall"], table)
    details = []
    for r in rows:
        if "error" in r:
            continue
        spent, splits = r["spent"], r.get("splits") or {}
        rejected = ", ".join(f"{k} {v}" for k, v in sorted(r["rejected"].items())) or "none"
        details.append([f"{r['suite']}{_quick_tag(r)}", r["optimizer"],
                        " / ".join(str(splits.get(s, "?")) for s in ("train", "val", "test")),
                        f"{_num(r['seed_val'])} → {_num(r['best_val'])}", str(r["generations"]), str(r["proposed"]),
                        str(r["accepted"]), rejected, str(r["malformed"]),
                        f"{spent['executor']['calls']} / {spent['optimizer']['calls']}",
                        f"{spent['executor']['tokens']:,} / {spent['optimizer']['tokens']:,}",
                        _pipe(r["stop_reason"])])
    if details:
        lines += ["", "Per run: splits, val, candidates by stage, malformed optimizer replies, spend per role.", ""]
        lines += _table(["suite", "optimizer", "train / val / test", "val: seed → best", "generations", "proposed",
                         "accepted", "rejected by stage", "malformed", "calls executor / optimizer",
                         "tokens executor / optimizer", "stopped"], details)
    if any(r.get("quick") for r in rows):
        lines += ["", "*(quick)*: a `--quick` smoke run (a few tasks, one generation): it shows the path works, "
                      "not what the optimizer can do; its verdict means nothing."]
    rerun = data.get("cached_rerun")
    if rerun:
        lines += ["", "### Re-run with the same seed and cache, in a new run folder", ""]
        if "error" in rerun:
            lines.append(f"{rerun['row']}: error: {rerun['error']}")
        else:
            lines += _table(["row", "calls", "fresh calls", "same best / same test", "wall", "executor s",
                             "optimizer s", "loop overhead", "target", "result"], [[
                                 f"{rerun['row']}{_quick_tag(rerun)}", str(rerun["calls"]), str(rerun["fresh_calls"]),
                                 f"{'yes' if rerun['same_best'] else 'no'} / {'yes' if rerun['same_test'] else 'no'}",
                                 f"{_num(rerun['loop_wall_s'], '.1f')} s", _num(rerun["executor_s"], ".1f"),
                                 _num(rerun["optimizer_s"], ".1f"), f"{100 * rerun['overhead_frac']:.1f}%",
                                 f"< {100 * rerun['target']:.0f}%, 0 fresh calls", _verdict(bool(rerun["pass"]))]])
            lines += ["", f"Loop overhead: {rerun['definition']} With the whole `aevolve` call as the wall: "
                          f"{100 * (rerun.get('overhead_frac_process') or 0):.1f}%."]
            if rerun.get("fresh_calls_note"):
                lines += ["", f"Fresh calls: {rerun['fresh_calls_note']}."]
    target = data.get("target_30min")
    if target:
        lines += ["", "### 5 generations on a 40-task val split in under 30 minutes", ""]
        if target.get("measured"):
            lines.append(f"`{target['command']}`: {target['generations']} generations on {target['val']} val tasks "
                         f"took {_num(target['wall_minutes'], '.1f')} min (stopped: {_pipe(target['stop_reason'])}): "
                         f"{_verdict(bool(target['pass']))}.")
        else:
            took = (f" (the row that ran: {target.get('generations')} generation(s) on {target.get('val')} val tasks, "
                    f"{_num(target.get('wall_minutes'), '.1f')} min)") if target.get("wall_minutes") is not None else ""
            lines.append(f"Not measured yet{took}: needs `{target['command']}`.")
    machine = data.get("machine")
    if machine:
        lines += ["", _machine(machine)]
    return [*lines, ""]


def dspy_baselines_section(data: dict[str, Any] | None, evolve: dict[str, Any] | None) -> list[str]:
    lines = ["## DSPy's own GEPA and MIPROv2, side by side", ""]
    if not data or not data.get("rows"):
        return [*lines, "No results yet: run `benchmarks/bench_dspy_baselines.py` (needs llama-cpp-python's "
                        "`server` extra).", ""]
    splits = data.get("splits") or {}
    lines += [
        f"DSPy {data.get('dspy', '?')} on the same model (the same GGUF, served by llama-cpp-python's "
        "OpenAI-compatible server on loopback), the same arithmetic tasks and splits "
        f"({splits.get('train', '?')} train / {splits.get('val', '?')} val / {splits.get('test', '?')} test, "
        f"agentforge's task ids) and the same call budget ({data.get('call_cap') or 'no cap'} calls: the total of "
        f"agentforge's {(data.get('matched') or {}).get('row', 'matched')} run). Program: `dspy."
        f"{'ChainOfThought' if data.get('program') == 'cot' else 'Predict'}` on `question -> answer` with the "
        f"seed's instruction \"{data.get('instruction', '')}\". {data.get('cap_rule', '')}",
        "",
    ]
    table = []
    arithmetic = [r for r in (evolve or {}).get("rows", []) if r.get("suite") == "arithmetic" and "error" not in r]
    for r in arithmetic:
        total = r["spent"]["total"]
        table.append([f"agentforge {r['optimizer']}{_quick_tag(r)}",
                      " / ".join(str((r.get("splits") or {}).get(s, "?")) for s in ("train", "val", "test")),
                      f"{_num(r['seed_val'])} → {_num(r['best_val'])}",
                      f"{_num(r['seed_test'])} → {_num(r['best_test'])}", _diff_ci(r["test"]), f"**{r['verdict']}**",
                      f"{total['calls']} (test scoring included)",
                      _minutes(r.get("wall_s"))])
    seed = data.get("seed") or {}
    for r in data["rows"]:
        label = {"mipro": "DSPy MIPROv2", "gepa": "DSPy GEPA"}.get(r["optimizer"], r["optimizer"])
        note = f" + {r.get('scoring_calls', '?')} to score"
        if r.get("over_cap"):
            note += f", {r['over_cap']} over the cap"
        if r.get("refused_calls"):
            note += f", {r['refused_calls']} refused at the cap"
        table.append([f"{label}{_quick_tag(r)}",
                      " / ".join(str(splits.get(s, "?")) for s in ("train", "val", "test")),
                      f"{_num(seed.get('val'))} → {_num(r.get('best_val'))}",
                      f"{_num(r.get('seed_test'))} → {_num(r.get('best_test'))}", _diff_ci(r.get("test") or {}),
                      f"**{r.get('verdict', '?')}**", f"{r.get('calls')}{note}", _minutes(r.get("wall_s"))])
    lines += _table(["method", "train / val / test", "val: seed → best", "test: seed → best", "diff [CI]", "verdict",
                     "LLM calls", "wall"], table)
    programs = [f"{r['optimizer']}: \"{_pipe(r['program']['instruction'])[:200]}\" with {r['program']['demos']} demo(s)"
                + (f" ({r['error']})" if r.get("error") else "") for r in data["rows"] if r.get("program")]
    if programs:
        lines += ["", "DSPy's chosen programs: " + "; ".join(programs) + "."]
    if data.get("quick"):
        lines += ["", "*(quick)*: a `--quick` smoke run (6 train / 6 val / 6 test, minimal settings): the path works; "
                      "the scores mean nothing."]
    machine = data.get("machine")
    if machine:
        lines += ["", _machine(machine)]
    return [*lines, ""]


def memory_section(data: dict[str, Any] | None) -> list[str]:
    lines = ["## Experience memory (Chroma)", ""]
    if not data:
        return [*lines, "No results yet: run `benchmarks/bench_memory.py`.", ""]
    store, targets, passed = data.get("store") or {}, data.get("targets") or {}, data.get("pass") or {}
    emb = data.get("embedding") or {}
    lines += [
        f"An embedded `ChromaStore` (SQLite records + Chroma index) filled with {store.get('records', '?'):,} records "
        f"in batches of {store.get('batch', '?')}, vectors precomputed so embedding is excluded; searches through "
        "the public API with precomputed query vectors, k=5. Embedding throughput is measured apart.",
        "",
    ]
    rows = [[name, _num(s.get("p50_ms"), ".2f"), _num(s.get("p95_ms"), ".2f"), _num(s.get("p99_ms"), ".2f"),
             str(s.get("n", "-"))] for name, s in (store.get("search") or {}).items()]
    lines += _table(["search", "p50 ms", "p95 ms", "p99 ms", "queries"], rows)
    similar = (store.get("search") or {}).get("similar") or {}
    lines += ["", *_table(["target", "goal", "measured", "result"], [
        [f"`similar()` p95 at {targets.get('at_records', '?'):,} records", f"≤ {targets.get('similar_p95_ms')} ms",
         f"{_num(similar.get('p95_ms'), '.2f')} ms", _verdict(bool(passed.get("similar_p95")))],
        ["batched add, embedding excluded", f"≥ {targets.get('add_records_per_s')} records/s",
         f"{_num(store.get('add_records_per_s'), '.0f')} records/s", _verdict(bool(passed.get("add_throughput")))],
    ])]
    lines += ["", f"Merging near-duplicates (a batch that repeats stored records): "
                  f"{_num(store.get('merge_batch_records_per_s'), '.0f')} records/s. Re-opening the store: "
                  f"{_num(store.get('reopen_s'), '.2f')} s; on disk {_num(store.get('disk_mb'), '.0f')} MB.",
              f"Embedding ({emb.get('model', '?')}, {emb.get('texts', '?')} texts, batch {emb.get('batch', '?')}): "
              f"{_num(emb.get('texts_per_s_1_thread'), '.0f')} texts/s with 1 torch thread, "
              f"{_num(emb.get('texts_per_s_2_threads'), '.0f')} with 2; model load {_num(emb.get('load_s'), '.1f')} s."]
    if data.get("quick"):
        lines += ["", "*(quick)*: a `--quick` run, fewer records than the target size."]
    if data.get("machine"):
        lines += ["", _machine(data["machine"])]
    return [*lines, ""]


def render_readme() -> str:
    engine = _load("engine_overhead.json")
    startup = _load("startup.json")
    local = _load("local_model.json")
    env_server = _load("env_server.json")
    throughput = _load("eval_throughput.json")
    worker_death = _load("worker_death.json")
    sandbox = _load("sandbox.json")
    evolve = _load("evolve.json")
    dspy_baselines = _load("dspy_baselines.json")
    memory = _load("memory.json")
    known = {"engine_overhead.json", "startup.json", "local_model.json", "env_server.json", "eval_throughput.json",
             "worker_death.json", "sandbox.json", "evolve.json", "dspy_baselines.json", "memory.json"}
    others = sorted(p.name for p in RESULTS.glob("*.json") if p.name not in known) if RESULTS.is_dir() else []
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by benchmarks/run_all.py from benchmarks/results/*.json; edit run_all.py, "
        "not this file. -->",
        "",
        "Numbers for reading, never timed assertions in tests. The machine these ran on is shared and noisy,",
        "so each comparison is measured side by side in one run and quoted as a ratio as well as in absolute",
        "terms.",
        "",
        "## How to run",
        "",
        "```sh",
        "make bench                                        # engine + start-up, then rewrite this README",
        ".venv/bin/python benchmarks/run_all.py --with-local  # also the local model (minutes)",
        ".venv/bin/python benchmarks/bench_engine.py --quick  # one benchmark alone, few repetitions",
        ".venv/bin/python benchmarks/run_all.py --readme-only # rewrite this README from results/",
        "```",
        "",
        "| file | measures | results |",
        "|---|---|---|",
        "| `bench_engine.py` | per-node engine overhead vs hand-written LangGraph, save=False and save=True "
        "| `results/engine_overhead.json` |",
        "| `bench_startup.py` | `import agentforge`, `--help`, `validate` on 50 nodes, heavy imports "
        "| `results/startup.json` |",
        "| `bench_local_model.py` | local model: raw prompt/generation speed, threads and wait policy under "
        "load; the issue-14 cases (prefix reuse, 2-node workflow vs its ideal, concurrent candidates, n=5, warm start) "
        "| `results/local_model.json` |",
        "| `bench_env_server.py` | steps/s of the environment server over loopback HTTP, 32 sessions "
        "| `results/env_server.json` |",
        "| `bench_eval_throughput.py` | evaluation tasks/s through litellm to a 200 ms stub server, and cached "
        "| `results/eval_throughput.json` |",
        "| `bench_worker_death.py` | what one killed worker costs: the standard library's process pool vs "
        "agentforge's | `results/worker_death.json` |",
        "| `bench_sandbox.py` | per-run start-up of the confined sandbox (bwrap) vs the old unshare path vs a bare "
        "interpreter | `results/sandbox.json` |",
        "| `bench_memory.py` | experience memory: `similar()` latency and batched add at 100,000 records, MiniLM "
        "embedding throughput | `results/memory.json` |",
        "| `bench_evolve.py` | evolve from plain seeds: each optimizer on arithmetic, BIG-bench and maze, seed vs best "
        "on test with the paired CI; a cached re-run's loop overhead | `results/evolve.json` |",
        "| `bench_dspy_baselines.py` | DSPy's GEPA and MIPROv2 on the same model, tasks, splits and call budget "
        "| `results/dspy_baselines.json` |",
        "",
    ]
    if engine:
        lines += engine_section(engine)
    else:
        lines += ["## Engine overhead per node", "", "No results yet: run `benchmarks/bench_engine.py`.", ""]
    if startup:
        lines += startup_section(startup)
    else:
        lines += ["## Start-up", "", "No results yet: run `benchmarks/bench_startup.py`.", ""]
    lines += local_model_section(local)
    lines += env_server_section(env_server)
    lines += eval_throughput_section(throughput)
    lines += worker_death_section(worker_death)
    lines += sandbox_section(sandbox)
    lines += memory_section(memory)
    lines += evolve_section(evolve)
    lines += dspy_baselines_section(dspy_baselines, evolve)
    if others:
        lines += ["## Other results", "", *[f"- `results/{name}`" for name in others], ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with-local", action="store_true", help="also run bench_local_model.py (minutes)")
    parser.add_argument("--quick", action="store_true", help="few repetitions, a smoke run")
    parser.add_argument("--readme-only", action="store_true", help="only regenerate README.md from results/")
    args = parser.parse_args()
    failed = [] if args.readme_only else run_benchmarks(args.with_local, args.quick)
    README.write_text(render_readme(), encoding="utf-8")
    sys.stderr.write(f"wrote {README}\n")
    if failed:
        sys.stderr.write(f"failed to run: {', '.join(failed)}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
