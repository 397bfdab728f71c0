"""Start-up costs: ``import agentforge``, ``agentforge validate`` (50 nodes), ``agentforge --help``;
and validation at scale: chains of 1,000 to 10,000 nodes, and an alias bomb it must refuse.

Every measurement is a fresh process, so it includes the interpreter's own start-up; the commands
run round-robin (one of each, then the next round) so machine noise spreads over all of them. Also
records which heavy libraries ``import agentforge`` pulls in, the slowest imports (``-X importtime``)
behind ``import agentforge`` and ``agentforge validate``, and the in-process time of validation alone.

Writes benchmarks/results/startup.json and prints a table. No timed assertions.

    .venv/bin/python benchmarks/bench_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import machine_info  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "startup.json"
PYTHON = ROOT / ".venv" / "bin" / "python"
CLI = ROOT / ".venv" / "bin" / "agentforge"

TARGET_IMPORT_S = 0.5
TARGET_VALIDATE_S = 0.5
TARGET_CHAIN_10000_S = 2.0
# Libraries that must stay out of `import agentforge` (DESIGN.md: measured import costs).
MUST_NOT_IMPORT = ("litellm", "langgraph", "llama_cpp", "networkx", "chromadb", "textgrad", "dspy", "torch")
ALSO_REPORTED = ("pydantic", "yaml", "structlog", "typer", "rich", "numpy", "httpx", "aiosqlite")

IMPORT_CHILD = """
import json, sys, time
started = time.perf_counter()
import agentforge
elapsed = time.perf_counter() - started
names = {names!r}
print(json.dumps({{"import_s": elapsed, "loaded": {{n: n in sys.modules for n in names}},
                   "modules": len(sys.modules)}}))
"""

VALIDATE_CHILD = """
import json, statistics, sys, time
started = time.perf_counter()
from agentforge.workflow.loader import load_spec
from agentforge.workflow.validate import find_problems
imported = time.perf_counter()
spec = load_spec(sys.argv[1])
loaded = time.perf_counter()
problems = find_problems(spec)
checked = time.perf_counter()
warm_load, warm_check = [], []
for _ in range(20):
    t0 = time.perf_counter()
    spec = load_spec(sys.argv[1])
    t1 = time.perf_counter()
    find_problems(spec)
    warm_load.append(t1 - t0)
    warm_check.append(time.perf_counter() - t1)
print(json.dumps({"import_s": imported - started, "first_load_s": loaded - imported,
                  "first_check_s": checked - loaded, "warm_load_s": statistics.median(warm_load),
                  "warm_check_s": statistics.median(warm_check), "problems": [str(p) for p in problems],
                  "nodes": len(spec.nodes)}))
"""

CLI_IMPORTTIME = ("import sys\nfrom agentforge.cli import main\n"
                  "sys.argv = ['agentforge', *sys.argv[1:]]\nmain()\n")


# -- the 50-node workflow ----------------------------------------------------------------------------
def workflow_50() -> str:
    """A valid 50-node workflow: a 20-agent chain, an 8-way fan-out joined into one agent, three
    write/review/route loops bounded by ``max_iterations``, and a 12-agent tail."""
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    state: dict[str, Any] = {}

    def agent(node_id: str, inputs: list[str], outputs: dict[str, str], prompt: str) -> None:
        nodes.append({"id": node_id, "kind": "agent", "instruction": f"You are {node_id}. Do your part well.",
                      "prompt": prompt, "inputs": inputs, "outputs": outputs})

    agent("a1", ["question"], {"a1_out": "str"}, "Question: {question}")
    for i in range(2, 21):
        agent(f"a{i}", [f"a{i - 1}_out"], {f"a{i}_out": "str"}, f"Previous: {{a{i - 1}_out}}")
        edges.append({"from": f"a{i - 1}", "to": f"a{i}"})
    for i in range(1, 9):
        agent(f"p{i}", ["a20_out"], {f"p{i}_out": "str"}, f"Angle {i} on: {{a20_out}}")
    edges.append({"from": "a20", "to": [f"p{i}" for i in range(1, 9)]})
    agent("merge", [f"p{i}_out" for i in range(1, 9)], {"merged": "str"},
          "Combine: " + " | ".join(f"{{p{i}_out}}" for i in range(1, 9)))
    edges.append({"from": [f"p{i}" for i in range(1, 9)], "to": "merge"})
    previous, previous_out = "merge", "merged"
    for k in range(1, 4):
        nxt = f"w{k + 1}" if k < 3 else "t1"
        agent(f"w{k}", [previous_out, f"feedback{k}"], {f"draft{k}": "str"},
              f"Improve: {{{previous_out}}}\nFeedback: {{feedback{k}}}")
        nodes.append({"id": f"r{k}", "kind": "agent", "instruction": "Review the draft.",
                      "prompt": f"Draft: {{draft{k}}}", "inputs": [f"draft{k}"],
                      "outputs": {f"ok{k}": "bool", f"feedback{k}": "str"}})
        nodes.append({"id": f"check{k}", "kind": "router", "inputs": [f"ok{k}"],
                      "routes": [{"when": f"ok{k}", "to": nxt}], "default": f"w{k}",
                      "max_iterations": 2, "on_limit": nxt})
        state[f"feedback{k}"] = {"type": "str", "default": "none yet"}
        edges += [{"from": previous, "to": f"w{k}"}] if previous == "merge" else []
        edges += [{"from": f"w{k}", "to": f"r{k}"}, {"from": f"r{k}", "to": f"check{k}"}]
        previous, previous_out = f"check{k}", f"draft{k}"
    agent("t1", ["draft3"], {"t1_out": "str"}, "Polish: {draft3}")
    for i in range(2, 13):
        agent(f"t{i}", [f"t{i - 1}_out"], {f"t{i}_out": "str"}, f"Polish: {{t{i - 1}_out}}")
        edges.append({"from": f"t{i - 1}", "to": f"t{i}"})
    assert len(nodes) == 50, len(nodes)
    lines = ["# Generated by benchmarks/bench_startup.py: 50 nodes, a fan-out/join and three bounded loops.",
             "version: 1", "kind: workflow", "name: bench-50", "inputs: {question: str}",
             "outputs: {t12_out: str}", "defaults: {model: local, temperature: 0, max_tokens: 256}",
             "state:"]
    lines += [f"  {name}: {json.dumps(value)}" for name, value in state.items()]
    lines.append("nodes:")
    lines += ["  - " + json.dumps(node) for node in nodes]
    lines.append("edges:")
    lines += ["  - " + json.dumps(edge) for edge in edges]
    return "\n".join(lines) + "\n"


def workflow_chain(n: int) -> str:
    """A chain of ``n`` agents, each reading the previous one's output (the shape that was quadratic)."""
    lines = ["version: 1", "kind: workflow", f"name: chain-{n}", "inputs: {x0: str}", f"outputs: {{x{n}: str}}",
             "nodes:"]
    for i in range(1, n + 1):
        lines += [f"  - id: n{i}", "    kind: agent", f"    inputs: [x{i - 1}]", f"    outputs: {{x{i}: str}}"]
    lines.append("edges:")
    lines += [f"  - {{from: n{i}, to: n{i + 1}}}" for i in range(1, n)]
    return "\n".join(lines) + "\n"


def alias_bomb() -> str:
    """Nine levels of nine aliases ("billion laughs"): 387 million values if it were built."""
    lines = ["version: 1", "kind: workflow", "name: lol", "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\nnodes: [{id: a, kind: agent}]\n"


SCALE_SIZES = (1_000, 2_000, 4_000, 10_000)


def scale(tmp: Path, env: dict[str, str], runs: int) -> dict[str, Any]:
    """``agentforge validate`` wall time (whole process) on long chains, and on an alias bomb it refuses."""
    cases: dict[str, tuple[Path, int]] = {}
    for n in SCALE_SIZES:
        path = tmp / f"chain_{n}.yaml"
        path.write_text(workflow_chain(n), encoding="utf-8")
        cases[f"chain_{n}"] = (path, 0)
    bomb = tmp / "alias_bomb.yaml"
    bomb.write_text(alias_bomb(), encoding="utf-8")
    cases["alias_bomb"] = (bomb, 2)
    out: dict[str, Any] = {}
    for name, (path, expected) in cases.items():
        walls = []
        for _ in range(max(1, min(runs, 3))):
            wall, proc = _run([str(CLI), "validate", str(path)], tmp, env)
            if proc.returncode != expected:
                raise RuntimeError(f"validate {name} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
            walls.append(wall)
        out[name] = {"cli_wall_s": _median(walls), "bytes": path.stat().st_size, "exit": expected}
    return out


# -- measurement -------------------------------------------------------------------------------------
def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=120)
    return time.perf_counter() - started, proc


def _importtime(cmd: list[str], cwd: Path, env: dict[str, str], top: int = 12) -> list[dict[str, Any]]:
    """The slowest imports by cumulative time (nesting depth 0 and 1), from ``python -X importtime``."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=120)
    rows: list[tuple[int, str, int]] = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        raw = parts[2].rstrip()
        depth = (len(raw) - len(raw.lstrip(" ")) - 1) // 2
        rows.append((int(parts[1]), raw.strip(), depth))
    rows = sorted((r for r in rows if r[2] <= 1), reverse=True)
    return [{"module": name, "depth": depth, "cumulative_ms": round(us / 1000, 1)}
            for us, name, depth in rows[:top]]


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


def run(runs: int) -> dict[str, Any]:
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="agentforge-bench-startup-") as tmp_name:
        tmp = Path(tmp_name)
        workflow = tmp / "bench_50.yaml"
        workflow.write_text(workflow_50(), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFORGE_")}
        env["AGENTFORGE_HOME"] = str(tmp / "home")
        env.pop("PYTHONPATH", None)
        env["PYTHONDONTWRITEBYTECODE"] = "0"
        names = (*MUST_NOT_IMPORT, *ALSO_REPORTED)
        commands = {
            "python_bare": [str(PYTHON), "-c", "pass"],
            "import_agentforge": [str(PYTHON), "-c", IMPORT_CHILD.format(names=names)],
            "cli_help": [str(CLI), "--help"],
            "cli_validate_50": [str(CLI), "validate", str(workflow)],
            "validate_in_process": [str(PYTHON), "-c", VALIDATE_CHILD, str(workflow)],
        }
        for cmd in commands.values():  # warm the OS file cache and any .pyc writes
            _run(cmd, tmp, env)
        walls: dict[str, list[float]] = {name: [] for name in commands}
        outputs: dict[str, list[Any]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, cmd in commands.items():
                wall, proc = _run(cmd, tmp, env)
                if proc.returncode != 0:
                    raise RuntimeError(f"{name} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
                walls[name].append(wall)
                if name in ("import_agentforge", "validate_in_process"):
                    outputs[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        validate_out = _run(commands["cli_validate_50"], tmp, env)[1].stdout.strip()
        import_profile = _importtime([str(PYTHON), "-X", "importtime", "-c", "import agentforge"], tmp, env)
        validate_profile = _importtime([str(PYTHON), "-X", "importtime", "-c", CLI_IMPORTTIME, "validate",
                                        str(workflow)], tmp, env)
        workflow_text = workflow.read_text(encoding="utf-8")
        scaled = scale(tmp, env, runs)

    imports = outputs["import_agentforge"]
    loaded = imports[-1]["loaded"]
    heavy_loaded = [n for n in MUST_NOT_IMPORT if loaded.get(n)]
    import_s = _median([o["import_s"] for o in imports])
    validate_wall = _median(walls["cli_validate_50"])
    inproc = outputs["validate_in_process"]
    chain_wall = scaled["chain_10000"]["cli_wall_s"]
    return {
        "benchmark": "startup",
        "description": "Fresh-process start-up: import, --help, validate on a generated 50-node workflow.",
        "machine": machine,
        "runs": runs,
        "python_bare_wall_s": _median(walls["python_bare"]),
        "import": {
            "in_process_s": import_s,
            "process_wall_s": _median(walls["import_agentforge"]),
            "modules_loaded": imports[-1]["modules"],
            "heavy_loaded": heavy_loaded,
            "loaded": loaded,
            "slowest_imports": import_profile,
        },
        "cli_help_wall_s": _median(walls["cli_help"]),
        "validate": {
            "workflow": {"nodes": 50, "lines": workflow_text.count("\n"),
                         "shape": "20-agent chain, 8-way fan-out + join, 3 bounded write/review/route loops, "
                                  "12-agent tail"},
            "cli_wall_s": validate_wall,
            "cli_wall_all_s": [round(w, 4) for w in walls["cli_validate_50"]],
            "cli_output": validate_out,
            "in_process": {
                "import_s": _median([o["import_s"] for o in inproc]),
                "first_load_s": _median([o["first_load_s"] for o in inproc]),
                "first_check_s": _median([o["first_check_s"] for o in inproc]),
                "warm_load_s": _median([o["warm_load_s"] for o in inproc]),
                "warm_check_s": _median([o["warm_check_s"] for o in inproc]),
                "problems": inproc[-1]["problems"],
            },
            "slowest_imports": validate_profile,
        },
        "scale": scaled,
        "targets": {
            "validate_10000_chain_wall_s": {"target": TARGET_CHAIN_10000_S, "value": chain_wall,
                                            "pass": chain_wall <= TARGET_CHAIN_10000_S},
            "import_s": {"target": TARGET_IMPORT_S, "value": import_s, "pass": import_s <= TARGET_IMPORT_S},
            "import_has_no_heavy_modules": {"target": list(MUST_NOT_IMPORT), "value": heavy_loaded,
                                            "pass": not heavy_loaded},
            "validate_50_wall_s": {"target": TARGET_VALIDATE_S, "value": validate_wall,
                                   "pass": validate_wall <= TARGET_VALIDATE_S},
        },
    }


def render_table(report: dict[str, Any]) -> str:
    v, i = report["validate"], report["import"]
    inproc = v["in_process"]
    rows = [
        ("python -c pass (interpreter only)", report["python_bare_wall_s"]),
        ("import agentforge (in process)", i["in_process_s"]),
        ("python -c 'import agentforge' (process)", i["process_wall_s"]),
        ("agentforge --help (process)", report["cli_help_wall_s"]),
        ("agentforge validate, 50 nodes (process)", v["cli_wall_s"]),
        ("  in process: imports", inproc["import_s"]),
        ("  in process: first load + check", inproc["first_load_s"] + inproc["first_check_s"]),
        ("  in process: warm load + check", inproc["warm_load_s"] + inproc["warm_check_s"]),
    ]
    rows += [(f"agentforge validate, {name.replace('_', ' ')} (process, exit {c['exit']})", c["cli_wall_s"])
             for name, c in report["scale"].items()]
    lines = [f"{label:<45} {value:8.3f} s" for label, value in rows]
    lines.append(f"heavy modules imported by 'import agentforge': {i['heavy_loaded'] or 'none'}")
    for name, t in report["targets"].items():
        lines.append(f"target {name}: {t['value']} vs {t['target']} -> {'PASS' if t['pass'] else 'FAIL'}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per command")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--print-workflow", action="store_true", help="print the generated 50-node YAML")
    args = parser.parse_args()
    if args.print_workflow:
        sys.stdout.write(workflow_50())
        return
    report = run(args.runs)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    sys.stdout.write(render_table(report) + f"\n\nwritten to {args.output}\n")


if __name__ == "__main__":
    main()
