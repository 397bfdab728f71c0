"""What one worker's death costs an evaluation: the standard library's process pool against agentforge's.

Two worker processes, 20 tasks of 0.3 s each, two in flight per worker; after the first result one
worker is killed with SIGKILL. Counted: tasks that failed, tasks that finished, and whether the pool
can run the next batch.

* ``concurrent.futures.ProcessPoolExecutor`` (one call per worker at a time, so 2 in flight): a dead
  worker marks the pool broken; it terminates the surviving worker and every pending future fails
  with ``BrokenProcessPool``, queued ones included.
* agentforge's ``ProcessExecutor``: the dead worker's running tasks fail; the survivor takes the queue.

    .venv/bin/python benchmarks/bench_worker_death.py [--out PATH]   # default: results/worker_death.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
RESULTS = HERE / "results" / "worker_death.json"

TASKS = 20
DELAY = 0.3

SLOW_WORKFLOW = """
version: 1
name: slow
inputs: {expression: str, delay: float}
outputs: {answer: float}
nodes:
  - {id: wait, kind: code, source: "import time; time.sleep(delay); print(eval(expression))",
     inputs: [expression, delay], outputs: {answer: float}}
"""


def slow(i: int) -> tuple[int, int]:
    time.sleep(DELAY)
    return i, os.getpid()


def stdlib_pool() -> dict[str, Any]:
    with ProcessPoolExecutor(max_workers=2) as pool:
        list(pool.map(slow, range(2)))  # both workers up
        futures = [pool.submit(slow, i) for i in range(TASKS)]
        failed = finished = 0
        killed = False
        for future in as_completed(futures):
            try:
                _, pid = future.result()
                finished += 1
                if not killed:
                    os.kill(pid, signal.SIGKILL)
                    killed = True
            except BrokenProcessPool:
                failed += 1
        try:
            pool.submit(slow, 0).result()
            usable = True
        except BrokenProcessPool:
            usable = False
    return {"failed": failed, "finished": finished, "pool_usable_after": usable}


async def agentforge_pool() -> dict[str, Any]:
    from agentforge.evaluation.evaluator import aevaluate
    from agentforge.evaluation.executors import ProcessExecutor
    from agentforge.runtime.workflow import Workflow

    with tempfile.TemporaryDirectory(prefix="agentforge-bench-") as tmp:
        home = Path(tmp)
        rows = [{"id": f"s{i}", "expression": f"{i} + 1", "delay": DELAY, "answer": i + 1} for i in range(TASKS)]
        (home / "slow.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        (home / "slow.yaml").write_text("version: 1\nkind: env\nname: slow\nsource: {type: jsonl, path: slow.jsonl, "
                                        "input_fields: [expression, delay], answer_field: answer}\nmetric: numeric\n"
                                        "splits: {val: 1.0}\nseed: 0\n")
        (home / "wf.yaml").write_text(textwrap.dedent(SLOW_WORKFLOW))
        wf = Workflow.from_yaml(home / "wf.yaml")
        with ProcessExecutor(workers=2) as pool:
            killed: list[int] = []

            def kill_one(result: Any) -> None:
                if not killed:
                    killed.append(pool.placements[result.task_id])
                    os.kill(killed[0], signal.SIGKILL)

            report = await aevaluate(wf, str(home / "slow.yaml"), split=None, executor=pool, concurrency=4,
                                     on_result=kill_one)
            again = await aevaluate(wf, str(home / "slow.yaml"), split=None, executor=pool, concurrency=4)
    return {"failed": report.errors, "finished": len(report.results) - report.errors,
            "pool_usable_after": again.errors == 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON results go")
    args = parser.parse_args()
    result = {"tasks": TASKS, "task_s": DELAY, "workers": 2,
              "concurrent.futures.ProcessPoolExecutor": stdlib_pool(),
              "agentforge ProcessExecutor": asyncio.run(agentforge_pool())}
    text = json.dumps(result, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
