"""Evaluation throughput through the real litellm HTTP path, and the fully cached re-run.

A stub OpenAI-compatible server (a separate process on 127.0.0.1) answers every chat completion
after a fixed 200 ms. An evaluation of N single-call tasks at concurrency C can at best finish
C / 0.2 tasks per second (160/s for C = 32); the target is >= 90% of that. The same evaluation run
again must come entirely from the gateway cache, at >= 1,000 tasks/s with zero HTTP calls.

    .venv/bin/python benchmarks/bench_eval_throughput.py [--tasks 1000] [--concurrency 32] [--delay 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "eval_throughput.json"

STUB_SERVER = r'''
import asyncio, json, sys, time
from starlette.applications import Starlette
from starlette.responses import Response, JSONResponse
from starlette.routing import Route
import uvicorn

DELAY = float(sys.argv[2])
calls = 0

async def completions(request):
    global calls
    body = await request.json()
    calls += 1
    await asyncio.sleep(DELAY)
    text = "ok " + body["messages"][-1]["content"][-12:]
    payload = {"id": f"cmpl-{calls}", "object": "chat.completion", "created": int(time.time()),
               "model": body.get("model", "stub"),
               "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}}
    return Response(json.dumps(payload), media_type="application/json")

async def count(request):
    return JSONResponse({"calls": calls})

app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"]),
                        Route("/calls", count)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
'''

WORKFLOW = """
version: 1
name: one-call
inputs: {question: str}
outputs: {answer: str}
defaults: {model: stub, temperature: 0}
nodes:
  - {id: ask, kind: agent, prompt: "Q: {question}", inputs: [question], outputs: [answer]}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stub_calls(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/calls", timeout=5) as resp:
        return int(json.loads(resp.read())["calls"])


def start_stub(port: int, delay: float) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", STUB_SERVER, str(port), str(delay)])
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            stub_calls(port)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the stub server did not start")


def build_env(n: int):  # type: ignore[no-untyped-def]
    from agentforge.envs.base import Environment, LocalSession, Observation, StepResult, Task

    class Session(LocalSession):
        def _reset(self, task: Task) -> Observation:
            return Observation(text=task.inputs["question"], fields=dict(task.inputs))

        def _step(self, action: str) -> StepResult:
            return StepResult(observation=Observation(text="done"), reward=float(action.startswith("ok")), done=True)

    class StubEnv(Environment):
        name = "stub-qa"

        def __init__(self) -> None:
            super().__init__([Task(id=f"t{i:05d}", split="val", inputs={"question": f"question number {i}"})
                              for i in range(n)])

        def session(self) -> Session:
            return Session(self)

    return StubEnv()


async def measure(args: argparse.Namespace, port: int, home: Path) -> dict[str, object]:
    from agentforge.config import ModelAlias, Settings
    from agentforge.evaluation.evaluator import aevaluate
    from agentforge.llm.gateway import Gateway
    from agentforge.runtime.workflow import Workflow
    from agentforge.workflow.loader import spec_from_text

    settings = Settings(home=home, runs_dir=home / "runs", models={
        # A self-hosted model has no list price; say so, as a user would, so litellm need not look it up.
        "stub": ModelAlias(model="openai/stub", api_base=f"http://127.0.0.1:{port}/v1", max_concurrency=256,
                           params={"input_cost_per_token": 0.0, "output_cost_per_token": 0.0})})
    os.environ.setdefault("OPENAI_API_KEY", "sk-stub")
    gateway = Gateway(settings)
    wf = Workflow(spec_from_text(WORKFLOW), settings=settings, gateway=gateway)
    env = build_env(args.tasks)
    # Warm up litellm (its first call initialises clients) on a handful of tasks outside the timing.
    warm = build_env(8)
    await aevaluate(wf, warm, split="val", concurrency=8, save_traces=False)

    calls_before = stub_calls(port)
    started = time.perf_counter()
    cold = await aevaluate(wf, env, split="val", concurrency=args.concurrency, save_traces=False)
    cold_s = time.perf_counter() - started
    calls_cold = stub_calls(port) - calls_before

    gateway.cache.clear_memory()  # the re-run reads the disk cache, as a new process would
    started = time.perf_counter()
    warm_report = await aevaluate(wf, env, split="val", concurrency=args.concurrency, save_traces=False)
    cached_s = time.perf_counter() - started
    calls_cached = stub_calls(port) - calls_before - calls_cold

    ray_row: dict[str, object] | None = None
    if args.ray:
        ray_row = await measure_ray(args, port, home, settings, wf)
    ideal = args.concurrency / args.delay
    cold_rate = args.tasks / cold_s
    cached_rate = args.tasks / cached_s
    return {
        "tasks": args.tasks, "concurrency": args.concurrency, "server_delay_s": args.delay,
        "ideal_tasks_per_s": ideal,
        "cold": {"wall_s": round(cold_s, 3), "tasks_per_s": round(cold_rate, 1),
                 "fraction_of_ideal": round(cold_rate / ideal, 3), "http_calls": calls_cold,
                 "errors": cold.errors, "mean_score": cold.mean_score},
        "cached": {"wall_s": round(cached_s, 3), "tasks_per_s": round(cached_rate, 1), "http_calls": calls_cached,
                   "cached_calls": warm_report.cached_calls, "errors": warm_report.errors},
        "ray_cold": ray_row,
        "targets": {
            "cold_at_least_90pct_of_ideal": cold_rate >= 0.9 * ideal,
            "cached_at_least_1000_tasks_per_s": cached_rate >= 1000,
            "cached_zero_http_calls": calls_cached == 0,
        },
    }


async def measure_ray(args: argparse.Namespace, port: int, home: Path, settings: object,
                      wf: object) -> dict[str, object]:
    """The first run again, on 2 local Ray workers (on loopback); the environment is a JSONL file they load."""
    from agentforge.evaluation.evaluator import aevaluate
    from agentforge.evaluation.executors import RayExecutor

    rows = [{"id": f"r{i:05d}", "question": f"ray question number {i}", "answer": "ok"} for i in range(args.tasks)]
    (home / "ray.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    env_path = home / "ray.yaml"
    env_path.write_text("version: 1\nkind: env\nname: ray-stub\nsource: {type: jsonl, path: ray.jsonl, "
                        "input_fields: [question], answer_field: answer}\nmetric: exact_match\n"
                        "splits: {val: 1.0}\nseed: 0\n")
    executor = RayExecutor(num_workers=2)
    executor._ray()  # start the cluster outside the timing
    calls_before = stub_calls(port)
    started = time.perf_counter()
    report = await aevaluate(wf, str(env_path), split="val", concurrency=args.concurrency,  # type: ignore[arg-type]
                             executor=executor, save_traces=False)
    wall = time.perf_counter() - started
    import ray

    ray.shutdown()
    rate = args.tasks / wall
    return {"wall_s": round(wall, 3), "tasks_per_s": round(rate, 1),
            "fraction_of_ideal": round(rate / (args.concurrency / args.delay), 3),
            "http_calls": stub_calls(port) - calls_before, "errors": report.errors, "workers": 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--ray", action="store_true", help="also measure the first run on 2 local Ray workers")
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    port = free_port()
    stub = start_stub(port, args.delay)
    try:
        with tempfile.TemporaryDirectory(prefix="agentforge-bench-") as tmp:
            result = asyncio.run(measure(args, port, Path(tmp)))
    finally:
        stub.terminate()
        stub.wait(timeout=10)
    result["machine"] = {"nproc": os.cpu_count(), "python": platform.python_version(),
                         "load_avg_at_end": os.getloadavg()[0], "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(textwrap.dedent(f"""\
        cold:   {result['cold']['tasks_per_s']} tasks/s = {result['cold']['fraction_of_ideal']:.0%} of ideal \
{result['ideal_tasks_per_s']:.0f}/s ({result['cold']['http_calls']} HTTP calls, {result['cold']['errors']} errors)
        cached: {result['cached']['tasks_per_s']} tasks/s, {result['cached']['http_calls']} HTTP calls
        ray (2 workers, first run): {result.get('ray_cold')}
        targets: {result['targets']}
        written to {RESULTS}"""))


if __name__ == "__main__":
    main()
