"""Engine overhead per node: agentforge workflows against hand-written LangGraph graphs of the same shape.

Both sides call the same zero-latency scripted model through its ``acomplete``, so the difference is
what the engine adds: input checks, the run context, typed generation, the gateway, the trace. Every
shape runs engine and baseline interleaved (A B B A ...) in one event loop so machine noise hits both.
Every invocation gets a unique input and the model answers with a unique text, so the gateway's
in-memory response cache never hits and each node really calls the model.

Rows:
  * ``save=False``: the core measurement (no trace file, no checkpoint), against the plain baseline.
  * ``save=True``: what ``agentforge run`` does (SQLite checkpointer, run.json, trace.json), against
    the plain baseline and against a hand-written graph compiled once with an ``AsyncSqliteSaver``.

Writes benchmarks/results/engine_overhead.json and prints a table. No timed assertions.

    .venv/bin/python benchmarks/bench_engine.py [--reps 300] [--save-reps 40] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "engine_overhead.json"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import machine_info  # noqa: E402

MODEL = "scripted/bench"
MAX_TOKENS = 512  # the workflow default, so both sides build the same request
TARGET_PER_NODE_MS = 1.0
TARGET_RATIO = 1.5


# -- shapes ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgentDef:
    id: str
    instruction: str
    prompt: str
    inputs: tuple[str, ...]
    output: str


@dataclass(frozen=True)
class Shape:
    name: str
    input: str
    output: str
    nodes: tuple[AgentDef, ...]
    entries: tuple[str, ...]
    edges: tuple[tuple[tuple[str, ...], str], ...]  # (sources, target); several sources = a join

    @property
    def size(self) -> int:
        return len(self.nodes)


def chain(n: int) -> Shape:
    nodes = tuple(
        AgentDef(f"step{i}", f"You are step {i}. Improve the text.", f"Text: {{x{i - 1}}}",
                 (f"x{i - 1}",), f"x{i}")
        for i in range(1, n + 1)
    )
    edges = tuple(((f"step{i}",), f"step{i + 1}") for i in range(1, n))
    return Shape(f"chain-{n}", "x0", f"x{n}", nodes, ("step1",), edges)


def fan_out(k: int) -> Shape:
    workers = tuple(
        AgentDef(f"worker{i}", f"You are expert {i}. Answer the task.", "Task: {task}", ("task",), f"r{i}")
        for i in range(1, k + 1)
    )
    joined = " | ".join(f"{{r{i}}}" for i in range(1, k + 1))
    join = AgentDef("join", "Combine the answers into one.", f"Answers: {joined}",
                    tuple(f"r{i}" for i in range(1, k + 1)), "answer")
    return Shape(f"fanout-{k}", "task", "answer", (*workers, join), tuple(w.id for w in workers),
                 ((tuple(w.id for w in workers), "join"),))


SHAPES = (chain(1), chain(5), chain(20), fan_out(4))


def spec_yaml(shape: Shape) -> str:
    """The shape as agentforge YAML (JSON flow style is valid YAML and needs no escaping care)."""
    lines = [
        "version: 1",
        "kind: workflow",
        f"name: bench-{shape.name}",
        f"inputs: {{{shape.input}: str}}",
        f"outputs: {{{shape.output}: str}}",
        f"defaults: {{model: {MODEL}, temperature: 0, max_tokens: {MAX_TOKENS}}}",
        f"entry: {json.dumps(list(shape.entries))}",
        "nodes:",
    ]
    for node in shape.nodes:
        lines.append("  - " + json.dumps({
            "id": node.id, "kind": "agent", "instruction": node.instruction, "prompt": node.prompt,
            "inputs": list(node.inputs), "outputs": {node.output: "str"},
        }))
    lines.append("edges:" if shape.edges else "edges: []")
    for sources, target in shape.edges:
        src: Any = sources[0] if len(sources) == 1 else list(sources)
        lines.append("  - " + json.dumps({"from": src, "to": target}))
    return "\n".join(lines) + "\n"


# -- the hand-written LangGraph baseline -------------------------------------------------------------
def baseline_builder(shape: Shape, model: Any, body_time: list[float]) -> Any:
    """A LangGraph StateGraph written directly: TypedDict state, one async function per node that
    formats the prompt, builds the same messages and request, calls the model and stores the text.
    Time spent inside node functions is added to ``body_time[0]`` (two clock reads per node)."""
    from langgraph.graph import END, START, StateGraph

    from agentforge.llm.base import LLMRequest, Message

    fields = {shape.input: str, **{n.output: str for n in shape.nodes}}
    state_type = TypedDict(f"State_{shape.name.replace('-', '_')}", fields, total=False)  # type: ignore[operator]

    def make(node: AgentDef) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
        system = Message(role="system", content=node.instruction)

        async def run(state: dict[str, Any]) -> dict[str, Any]:
            started = time.perf_counter()
            user = node.prompt.format(**{name: state[name] for name in node.inputs})
            request = LLMRequest(model=MODEL, messages=(system, Message(role="user", content=user)),
                                 temperature=0.0, max_tokens=MAX_TOKENS)
            raw = await model.acomplete(request)
            body_time[0] += time.perf_counter() - started
            return {node.output: raw.texts[0].strip()}

        return run

    builder = StateGraph(state_type)
    for node in shape.nodes:
        builder.add_node(node.id, make(node))
    for entry in shape.entries:
        builder.add_edge(START, entry)
    has_out: set[str] = set()
    for sources, target in shape.edges:
        builder.add_edge(list(sources) if len(sources) > 1 else sources[0], target)
        has_out.update(sources)
    for node in shape.nodes:
        if node.id not in has_out:
            builder.add_edge(node.id, END)
    return builder


# -- measurement -------------------------------------------------------------------------------------
def _stats(samples_s: list[float], body_s: list[float], size: int) -> dict[str, float]:
    per_node_ms = sorted(s * 1000 / size for s in samples_s)
    q = statistics.quantiles(per_node_ms, n=10)
    out = {
        "per_node_median_ms": round(statistics.median(per_node_ms), 4),
        "per_node_p90_ms": round(q[8], 4),
        "per_node_min_ms": round(per_node_ms[0], 4),
        "invoke_median_ms": round(statistics.median(samples_s) * 1000, 4),
    }
    if body_s:
        # Inside node functions vs everything else (LangGraph's loop plus, for the engine, the run set-up).
        inside = statistics.median(body_s) * 1e6 / size
        out["inside_nodes_per_node_us"] = round(inside, 1)
        out["outside_nodes_per_node_us"] = round(statistics.median(
            (t - b) * 1e6 / size for t, b in zip(samples_s, body_s, strict=True)), 1)
    return out


Runner = Callable[[int], Awaitable[float | None]]


async def interleave(runners: dict[str, Runner], reps: int, warmup: int,
                     model: Any) -> dict[str, tuple[list[float], list[float]]]:
    """Run every runner ``reps`` times, rotating the order each round so no side always goes first.
    Returns per runner the wall times and the time spent inside node functions (if it reports one)."""
    names = list(runners)
    serial = itertools.count()
    for _ in range(warmup):
        for name in names:
            await runners[name](next(serial))
    samples: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in names}
    for rep in range(reps):
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            i = next(serial)
            started = time.perf_counter()
            body = await runners[name](i)
            samples[name][0].append(time.perf_counter() - started)
            if body is not None:
                samples[name][1].append(body)
        model.calls.clear()  # the scripted model records every request; keep memory flat
    return samples


async def bench_shape(shape: Shape, settings: Any, model: Any, reps: int, save_reps: int,
                      warmup: int) -> dict[str, Any]:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    from agentforge.runtime.workflow import Workflow
    from agentforge.workflow.loader import spec_from_text

    wf = Workflow(spec_from_text(spec_yaml(shape)), settings=settings)
    body_time = [0.0]
    builder = baseline_builder(shape, model, body_time)
    plain = builder.compile()
    key = shape.input

    async def engine(i: int) -> float:
        result = await wf.arun({key: f"task {i}"}, save=False)
        assert result.outputs[shape.output].startswith("ok")
        return sum(node.latency_s for node in result.trace.nodes)  # the engine's own per-node timing

    async def engine_saved(i: int) -> float:
        result = await wf.arun({key: f"task {i}"}, save=True)
        assert result.trace_path is not None
        return sum(node.latency_s for node in result.trace.nodes)

    async def baseline(i: int) -> float:
        body_time[0] = 0.0
        state = await plain.ainvoke({key: f"task {i}"})
        assert state[shape.output].startswith("ok")
        return body_time[0]

    core = await interleave({"engine": engine, "baseline": baseline}, reps, warmup, model)

    async with AsyncSqliteSaver.from_conn_string(str(settings.runs_dir / "baseline.sqlite")) as saver:
        durable = builder.compile(checkpointer=saver)

        async def baseline_saved(i: int) -> float:
            body_time[0] = 0.0
            await durable.ainvoke({key: f"task {i}"}, {"configurable": {"thread_id": f"b{i}"}})
            return body_time[0]

        saved = await interleave({"engine_save": engine_saved, "baseline": baseline,
                                  "baseline_sqlite": baseline_saved}, save_reps, max(2, warmup // 5), model)

    eng, base = _stats(*core["engine"], shape.size), _stats(*core["baseline"], shape.size)
    eng_s, base_s, base_db = (_stats(*saved[name], shape.size)
                              for name in ("engine_save", "baseline", "baseline_sqlite"))
    ratio = eng["per_node_median_ms"] / base["per_node_median_ms"]
    return {
        "shape": shape.name,
        "nodes": shape.size,
        "reps": reps,
        "engine": eng,
        "baseline": base,
        "ratio": round(ratio, 3),
        "added_per_node_us": round((eng["per_node_median_ms"] - base["per_node_median_ms"]) * 1000, 1),
        "pass_per_node": eng["per_node_median_ms"] <= TARGET_PER_NODE_MS,
        "pass_ratio": ratio <= TARGET_RATIO,
        "save": {
            "reps": save_reps,
            "engine": eng_s,
            "baseline": base_s,
            "baseline_sqlite": base_db,
            "ratio_vs_baseline": round(eng_s["per_node_median_ms"] / base_s["per_node_median_ms"], 3),
            "ratio_vs_baseline_sqlite": round(eng_s["per_node_median_ms"] / base_db["per_node_median_ms"], 3),
        },
    }


async def run(reps: int, save_reps: int, warmup: int) -> dict[str, Any]:
    from agentforge.config import Settings
    from agentforge.llm.scripted import ScriptedModel, register_script, unregister_script
    from agentforge.logs import configure_logging

    configure_logging(level="warning")  # as the CLI does; unconfigured structlog prints every run.finished
    machine = machine_info()
    tmp = Path(tempfile.mkdtemp(prefix="agentforge-bench-"))
    scratch = tmp / "scratch"
    scratch.mkdir()
    previous_tempdir = tempfile.tempdir
    tempfile.tempdir = str(scratch)  # save=False runs make a scratch workspace each; keep them contained
    counter = itertools.count()
    model = register_script("bench", ScriptedModel(default=lambda _request: f"ok {next(counter)}"))
    settings = Settings(cache_enabled=False, home=tmp / "home", runs_dir=tmp / "runs")
    settings.runs_dir.mkdir(parents=True)
    shapes: list[dict[str, Any]] = []
    try:
        for shape in SHAPES:
            started = time.perf_counter()
            row = await bench_shape(shape, settings, model, reps, save_reps, warmup)
            shapes.append(row)
            sys.stderr.write(f"{shape.name}: engine {row['engine']['per_node_median_ms']:.3f} ms/node, "
                             f"baseline {row['baseline']['per_node_median_ms']:.3f} ms/node, "
                             f"ratio {row['ratio']:.2f} ({time.perf_counter() - started:.1f} s)\n")
        leaked = sum(1 for _ in scratch.iterdir())
    finally:
        tempfile.tempdir = previous_tempdir
        unregister_script("bench")
        shutil.rmtree(tmp, ignore_errors=True)

    worst_node = max(s["engine"]["per_node_median_ms"] for s in shapes)
    worst_ratio = max(s["ratio"] for s in shapes)
    return {
        "benchmark": "engine_overhead",
        "description": "Wall time of one workflow invoke divided by its node count, agentforge vs a "
                       "hand-written LangGraph graph of the same shape, same zero-latency scripted model, "
                       "interleaved in one run.",
        "machine": machine,
        "method": {
            "timer": "time.perf_counter around one awaited invoke, one event loop for both sides",
            "order": "rotated each repetition (A B, B A, ...)",
            "warmup": warmup,
            "cache": "Settings(cache_enabled=False) plus unique inputs and unique model replies, so the "
                     "gateway's in-memory cache front never hits",
            "logging": "structlog configured at warning level, as the CLI does",
            "engine_call": "await Workflow.arun(inputs, save=False)",
            "baseline_call": "await StateGraph(...).compile().ainvoke(state)",
            "save_row": "Workflow.arun(save=True): per-run AsyncSqliteSaver + run.json + trace.json; "
                        "baseline_sqlite: hand-written graph compiled once, AsyncSqliteSaver kept open",
            "inside_outside": "inside = time in node functions (engine: NodeTrace.latency_s; baseline: two "
                              "clock reads per node); outside = the rest of the invoke",
        },
        "shapes": shapes,
        "observations": {
            "temp_dirs_left_in_TMPDIR_by_save_false_runs": leaked,
        },
        "targets": {
            "per_node_median_ms": {"target": TARGET_PER_NODE_MS, "worst": worst_node,
                                   "pass": worst_node <= TARGET_PER_NODE_MS},
            "ratio_vs_langgraph": {"target": TARGET_RATIO, "worst": worst_ratio,
                                   "pass": worst_ratio <= TARGET_RATIO},
        },
    }


async def profile(shape: Shape, reps: int) -> None:
    """cProfile ``reps`` engine invokes (after a warm-up) and print the top functions."""
    import cProfile
    import pstats

    from agentforge.config import Settings
    from agentforge.llm.scripted import ScriptedModel, register_script
    from agentforge.logs import configure_logging
    from agentforge.runtime.workflow import Workflow
    from agentforge.workflow.loader import spec_from_text

    configure_logging(level="warning")
    with tempfile.TemporaryDirectory(prefix="agentforge-bench-") as tmp_name:
        tmp = Path(tmp_name)
        previous_tempdir, tempfile.tempdir = tempfile.tempdir, tmp_name
        counter = itertools.count()
        model = register_script("bench", ScriptedModel(default=lambda _request: f"ok {next(counter)}"))
        settings = Settings(cache_enabled=False, home=tmp / "home", runs_dir=tmp / "runs")
        wf = Workflow(spec_from_text(spec_yaml(shape)), settings=settings)
        try:
            for i in range(20):
                await wf.arun({shape.input: f"warm {i}"}, save=False)
            profiler = cProfile.Profile()
            profiler.enable()
            for i in range(reps):
                await wf.arun({shape.input: f"task {i}"}, save=False)
                model.calls.clear()
            profiler.disable()
        finally:
            tempfile.tempdir = previous_tempdir
    stats = pstats.Stats(profiler, stream=sys.stdout)
    sys.stdout.write(f"{reps} invokes of {shape.name} ({shape.size} nodes); times are totals\n")
    stats.sort_stats("cumulative").print_stats(r"agentforge/", 30)
    stats.sort_stats("tottime").print_stats(25)


def render_table(report: dict[str, Any]) -> str:
    header = (f"{'shape':<10} {'nodes':>5} {'engine ms/node':>15} {'p90':>7} {'baseline':>9} {'p90':>7} "
              f"{'ratio':>6} {'+us/node':>9} {'save=True':>10} {'sqlite base':>12}")
    lines = [header, "-" * len(header)]
    for s in report["shapes"]:
        e, b, sv = s["engine"], s["baseline"], s["save"]
        lines.append(
            f"{s['shape']:<10} {s['nodes']:>5} {e['per_node_median_ms']:>15.3f} {e['per_node_p90_ms']:>7.3f} "
            f"{b['per_node_median_ms']:>9.3f} {b['per_node_p90_ms']:>7.3f} {s['ratio']:>6.2f} "
            f"{s['added_per_node_us']:>9.1f} {sv['engine']['per_node_median_ms']:>10.3f} "
            f"{sv['baseline_sqlite']['per_node_median_ms']:>12.3f}"
        )
    for name, t in report["targets"].items():
        verdict = "PASS" if t["pass"] else "FAIL"
        lines.append(f"target {name}: worst {t['worst']} vs {t['target']} -> {verdict}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=300, help="repetitions per shape (save=False)")
    parser.add_argument("--save-reps", type=int, default=40, help="repetitions per shape (save=True)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="few repetitions, for a smoke run")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--profile", metavar="SHAPE", choices=[s.name for s in SHAPES],
                        help="instead: run the engine alone on SHAPE under cProfile and print the hot spots")
    args = parser.parse_args()
    if args.profile:
        asyncio.run(profile(next(s for s in SHAPES if s.name == args.profile), args.reps))
        return
    if args.quick:
        args.reps, args.save_reps, args.warmup = 30, 6, 5
    report = asyncio.run(run(args.reps, args.save_reps, args.warmup))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    sys.stdout.write(render_table(report) + f"\n\nwritten to {args.output}\n")


if __name__ == "__main__":
    main()
