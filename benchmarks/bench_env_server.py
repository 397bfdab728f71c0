"""Environment server throughput: steps per second through agentforge's HTTP server and client.

A trivial environment (instant steps; an episode ends after 50 steps) is served by
``agentforge.envs.remote.server`` on 127.0.0.1, and 32 concurrent sessions play it until a fixed number of
steps (20,000 by default) is done. Each configuration is measured side by side in one run:

* ``client/server-process``: the ``RemoteSession`` client (on aiohttp), the server in a separate
  process (the real deployment shape: the client and the server each have a core). The headline.
* ``raw-aiohttp/server-process``: the same traffic from bare ``aiohttp`` calls, to show what
  ``RemoteSession``'s own layers cost, and ``raw-httpx/server-process`` from bare
  ``httpx.AsyncClient`` calls (its stock transport), the other well-kept client, for the record;
* ``client/server-thread``: the ``RemoteSession`` client with the server in a thread of the same
  process (one interpreter, one GIL: the harder case, as in the tests).

Server and client CPU time per step are recorded too (server: /proc of its process), which says
which side limits throughput. The target is >= 1,000 steps/s. Numbers for reading, never timed
assertions in tests.

    .venv/bin/python benchmarks/bench_env_server.py [--steps 20000] [--concurrency 32] [--quick]
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
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from agentforge.envs.base import Environment, LocalSession, Observation, StepResult, Task  # noqa: E402

RESULTS = HERE / "results" / "env_server.json"
TARGET = 1000.0
EPISODE = 50


class TickSession(LocalSession):
    def _reset(self, task: Task) -> Observation:
        self.ticks = 0
        return Observation(text="tick 0")

    def _step(self, action: str) -> StepResult:
        self.ticks += 1
        done = self.ticks >= EPISODE
        return StepResult(observation=Observation(text=f"tick {self.ticks}"), reward=float(done), done=done)


class TickEnv(Environment):
    """Instant steps: what is measured is the protocol, not the environment."""

    name = "tick"
    instruction = "Say tick."
    multi_turn = True
    max_steps = EPISODE + 1

    def __init__(self) -> None:
        super().__init__([Task(id=f"t{i}") for i in range(64)])

    def session(self) -> TickSession:
        return TickSession(self)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/", timeout=1):
                return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server on {url} did not come up") from None
            time.sleep(0.05)


async def drive(total: int, concurrency: int, play: Callable[[int, int], Awaitable[int]]) -> dict[str, Any]:
    """Run ``concurrency`` workers until ``total`` steps are done; each ``play(worker, budget)``
    plays steps (resetting at episode ends) and returns how many it took."""
    share = [total // concurrency + (1 if i < total % concurrency else 0) for i in range(concurrency)]
    started = time.perf_counter()
    done = await asyncio.gather(*(play(i, n) for i, n in enumerate(share)))
    wall = time.perf_counter() - started
    steps = sum(done)
    return {"steps": steps, "wall_s": round(wall, 3), "steps_per_s": round(steps / wall, 1),
            "ratio_to_target": round(steps / wall / TARGET, 2), "pass": steps / wall >= TARGET}


async def run_client(url: str, total: int, concurrency: int) -> dict[str, Any]:
    from agentforge.envs.remote.client import RemoteEnv

    env = await RemoteEnv.aopen(url, timeout=30, retries=0, max_connections=max(64, concurrency))

    async def play(worker: int, budget: int) -> int:
        session = env.session()
        task_id = f"t{worker % 64}"
        steps = 0
        try:
            await session.areset(task_id)
            while steps < budget:
                result = await session.astep("tick")
                steps += 1
                if result.done:
                    await session.areset(task_id)
        finally:
            await session.aclose()
        return steps

    try:
        return await drive(total, concurrency, play)
    finally:
        await env.aclose()


async def run_raw(url: str, total: int, concurrency: int) -> dict[str, Any]:
    import httpx

    size = max(64, concurrency)
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def play(worker: int, budget: int) -> int:
            sid = (await client.post("/create", json={})).json()["id"]
            await client.post("/reset", json={"id": sid, "data_idx": worker % 64})
            steps = 0
            while steps < budget:
                response = await client.post("/step", json={"id": sid, "action": "tick"})
                response.raise_for_status()
                steps += 1
                if response.json()["done"]:
                    await client.post("/reset", json={"id": sid, "data_idx": worker % 64})
            await client.post("/close", json={"id": sid})
            return steps

        return await drive(total, concurrency, play)


async def run_aiohttp(url: str, total: int, concurrency: int) -> dict[str, Any]:
    """The same traffic from bare ``aiohttp`` calls: the candidate to replace the custom transport."""
    import aiohttp

    size = max(64, concurrency)
    connector = aiohttp.TCPConnector(limit=size, limit_per_host=size)
    async with aiohttp.ClientSession(base_url=url, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=30)) as client:

        async def post(path: str, body: dict[str, Any]) -> Any:
            async with client.post(path, json=body) as response:
                response.raise_for_status()
                return await response.json()

        async def play(worker: int, budget: int) -> int:
            sid = (await post("/create", {}))["id"]
            await post("/reset", {"id": sid, "data_idx": worker % 64})
            steps = 0
            while steps < budget:
                result = await post("/step", {"id": sid, "action": "tick"})
                steps += 1
                if result["done"]:
                    await post("/reset", {"id": sid, "data_idx": worker % 64})
            await post("/close", {"id": sid})
            return steps

        return await drive(total, concurrency, play)


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) used so far by process ``pid``, where /proc exists."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> dict[str, Any]:
    import httpx
    import starlette
    import uvicorn

    extras = {}
    for name in ("orjson", "httptools", "uvloop"):
        try:
            module = __import__(name)
            extras[name] = getattr(module, "__version__", "installed")
        except ImportError:
            extras[name] = None
    return {
        "nproc": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(), "load_avg_at_end": os.getloadavg()[0],
        "httpx": httpx.__version__, "starlette": starlette.__version__, "uvicorn": uvicorn.__version__,
        **extras, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def serve_forever(port: int) -> None:
    from agentforge.envs.remote.server import serve

    serve(TickEnv(), port=port, log_level="warning", access_log=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="2,000 steps: a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON results go")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)  # the server process
    args = parser.parse_args()
    if args.serve:
        serve_forever(args.serve)
        return
    total = 2_000 if args.quick else args.steps

    from agentforge.envs.remote.server import serve_in_thread

    runs: dict[str, Any] = {}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], cwd=ROOT)
    try:
        wait_healthy(url)
        asyncio.run(run_client(url, min(total, 1000), args.concurrency))  # warm-up
        jobs: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
            "client/server-process": lambda: run_client(url, total, args.concurrency),
            "raw-aiohttp/server-process": lambda: run_aiohttp(url, total, args.concurrency),
            "raw-httpx/server-process": lambda: run_raw(url, total, args.concurrency),
        }
        for name, job in jobs.items():
            server_cpu, client_cpu = process_cpu(server.pid), time.process_time()
            run = asyncio.run(job())
            run["client_cpu_us_per_step"] = round((time.process_time() - client_cpu) / run["steps"] * 1e6)
            if server_cpu is not None:
                used = (process_cpu(server.pid) or 0.0) - server_cpu
                run["server_cpu_us_per_step"] = round(used / run["steps"] * 1e6)
            runs[name] = run
    finally:
        server.terminate()
        server.wait(timeout=10)
    with serve_in_thread(TickEnv()) as thread_url:
        client_cpu = time.process_time()
        run = asyncio.run(run_client(thread_url, total, args.concurrency))
        run["process_cpu_us_per_step"] = round((time.process_time() - client_cpu) / run["steps"] * 1e6)
        runs["client/server-thread"] = run

    headline = runs["client/server-process"]
    result = {
        "benchmark": "env_server",
        "steps": total, "concurrency": args.concurrency, "episode_steps": EPISODE, "target_steps_per_s": TARGET,
        "runs": runs,
        "speedup_vs_raw_httpx": round(headline["steps_per_s"] / runs["raw-httpx/server-process"]["steps_per_s"], 2),
        # RemoteSession's own layers (profile parsing, models, retries) against bare calls on the same client
        # library, in client CPU per step: wall time on this shared machine is too noisy for that.
        "client_cpu_us_per_step": {
            "RemoteSession": headline["client_cpu_us_per_step"],
            "raw aiohttp": runs["raw-aiohttp/server-process"]["client_cpu_us_per_step"],
            "raw httpx, stock transport": runs["raw-httpx/server-process"]["client_cpu_us_per_step"],
        },
        "pass": headline["pass"],
        "machine": machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for name, run in runs.items():
        mark = "pass" if run["pass"] else "FAIL"
        sys.stdout.write(f"{name:44s} {run['steps']:6d} steps in {run['wall_s']:6.2f} s = "
                         f"{run['steps_per_s']:8.1f} steps/s ({run['ratio_to_target']:.2f}x target) {mark}\n")
    sys.stdout.write(f"wrote {args.out}\n")


if __name__ == "__main__":
    main()
