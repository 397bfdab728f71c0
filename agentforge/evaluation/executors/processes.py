"""Episodes fanned out over persistent worker processes on this machine.

Built on ``multiprocessing`` (spawned processes, one command and one reply ``Connection`` each) rather
than ``concurrent.futures.ProcessPoolExecutor``: that pool runs one call per worker at a time, cannot
stream results from inside a call, and when one worker dies it marks the whole pool broken and
terminates the others, losing every episode in flight (see benchmarks/README.md). Here a worker that
dies fails only the episodes it was running, and its share of the concurrency passes to a survivor.

Both ends read their connections from their asyncio loop (``add_reader``); no helper threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_for_connections
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any

from agentforge.envs.base import Task
from agentforge.errors import ConfigError
from agentforge.evaluation.executors.base import OnResult, split_slots
from agentforge.evaluation.job import EvalJob, ResolvedJob
from agentforge.evaluation.report import TaskError, TaskResult
from agentforge.logs import get_logger

log = get_logger(__name__)

WORKER_START_TIMEOUT_S = 180.0
# What a worker imports before it reports ready, so an evaluation never waits for it.
WARM_MODULES = ("agentforge.runtime.workflow", "agentforge.evaluation.evaluator", "agentforge.envs.registry",
                "agentforge.workflow.loader", "agentforge.evaluation.job")

Message = tuple[Any, ...]


@dataclass
class _Worker:
    """The parent's handle on one worker process: commands go down one pipe, replies come up another."""

    process: BaseProcess
    commands: Connection
    replies: Connection
    pid: int

    def send(self, message: Message) -> bool:
        """False if the worker is gone; its death itself is noticed on the reply pipe."""
        try:
            self.commands.send(message)
        except OSError:
            return False
        return True


def _threads_shared(job: EvalJob, workers: int) -> EvalJob:
    """Unless the settings name a thread count, each worker's local model gets its share of the cores (two
    workers of one thread each on two cores), not the whole-machine default each."""
    local = dict(job.settings.get("local") or {})
    if local.get("n_threads") is not None:
        return job
    from agentforge.llm.local import usable_cores

    local["n_threads"] = max(1, usable_cores() // workers)
    return job.model_copy(update={"settings": {**job.settings, "local": local}})


class ProcessExecutor:
    """Episodes fanned out over persistent worker processes on this machine, so an evaluation uses
    every core (one process caps out on litellm's per-call CPU cost at high concurrency).

    ``start()`` spawns ``workers`` processes (default: one per CPU) and waits until each has imported
    the evaluation stack; ``amap`` starts them if needed; ``close()`` (or leaving a ``with`` block)
    stops them. Each worker rebuilds the job (so the environment must be named by a YAML path or a
    built-in name), keeps it for the next evaluation, runs its share of ``concurrency`` (the shares add
    up to it exactly) and gets more tasks as its slots free up. Results stream back as each episode
    ends. A worker that dies fails the tasks it was running; the others take the rest.
    """

    name = "processes"

    def __init__(self, workers: int | None = None, *, start_timeout: float = WORKER_START_TIMEOUT_S) -> None:
        if workers is not None and workers < 1:
            raise ConfigError(f"the process executor needs at least one worker, not {workers}")
        self.workers = workers or max(1, os.cpu_count() or 1)
        self.start_timeout = start_timeout
        self.placements: dict[str, int] = {}  # task id -> pid of the worker it went to (latest evaluation)
        self.rebuilt = 0  # last evaluation: how many workers had to rebuild the job (0 = all reused it)
        self.peak_in_flight = 0  # last evaluation: most episodes running at once, never above its concurrency
        self._pool: list[_Worker] = []

    @property
    def pids(self) -> list[int]:
        """Process ids of the running workers."""
        return [w.pid for w in self._pool if w.process.exitcode is None]

    def start(self) -> ProcessExecutor:
        """Spawn the missing workers (all the first time, replacements for dead ones later) and wait
        until each is ready."""
        for worker in [w for w in self._pool if w.process.exitcode is not None]:
            self._pool.remove(worker)
            _release(worker)
        missing = self.workers - len(self._pool)
        if missing <= 0:
            return self
        started = time.perf_counter()
        ctx = multiprocessing.get_context("spawn")  # never fork: this process has threads and a loop
        fresh: list[_Worker] = []
        try:
            for _ in range(missing):
                fresh.append(_launch(ctx))
            _await_ready(fresh, self.start_timeout)
        except BaseException:
            _stop(fresh)
            raise
        self._pool.extend(fresh)
        log.info("eval.workers_started", pids=[w.pid for w in fresh], seconds=round(time.perf_counter() - started, 2))
        return self

    def close(self) -> None:
        """Stop the workers. The executor can be started again."""
        pool, self._pool = self._pool, []
        _stop(pool)

    def __enter__(self) -> ProcessExecutor:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    async def amap(self, job: EvalJob, tasks: Sequence[Task], *, concurrency: int,
                   on_result: OnResult | None = None) -> list[TaskResult]:
        job.require_env("the process executor rebuilds the environment in each worker")
        if not tasks:
            return []
        await asyncio.to_thread(self.start)
        try:
            results, failure = await self._dispatch(job, tasks, concurrency, on_result)
        except BaseException:
            self.close()  # interrupted mid-round: workers may be mid-episode with stale replies queued
            raise
        if failure is not None:  # every worker answered and none ran a task: the pool stays as it is
            raise ConfigError(failure)
        return results

    async def _dispatch(self, job: EvalJob, tasks: Sequence[Task], concurrency: int,
                        on_result: OnResult | None) -> tuple[list[TaskResult], str | None]:
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[tuple[int, Message | None]] = asyncio.Queue()
        workers = list(self._pool)
        plan = _Dispatch(workers, tasks, split_slots(concurrency, len(workers)), on_result)
        self.placements = plan.placements  # filled as tasks are handed out
        failure: str | None = None
        for index, worker in enumerate(workers):
            loop.add_reader(worker.replies.fileno(), _read, worker.replies, inbox, index)
        job = _threads_shared(job, len(workers))
        try:
            for worker in workers:
                worker.send(("job", job))
            while len(plan.results) < len(plan.tasks) and not plan.settled_refusal:
                if not plan.live:
                    plan.abandon()
                    break
                index, reply = await inbox.get()
                if reply is None:
                    plan.lost(index, await asyncio.to_thread(_reap, workers[index]))
                elif reply[0] == "job_failed":
                    failure = failure or f"evaluation worker {workers[index].pid} could not rebuild the job: {reply[1]}"
                    plan.refuse(index)
                else:
                    plan.handle(index, reply)
        finally:
            for worker in workers:
                with contextlib.suppress(OSError, ValueError):  # closed or already removed
                    loop.remove_reader(worker.replies.fileno())
        if failure is not None:
            return [], failure
        self.rebuilt, self.peak_in_flight = plan.rebuilt, plan.peak
        return [plan.results[t.id] for t in tasks], None


def _read(conn: Connection, inbox: asyncio.Queue[tuple[int, Message | None]], index: int) -> None:
    """A reply pipe is readable: pass its message on; None means the worker is gone."""
    try:
        message: Message | None = conn.recv()
    except (EOFError, OSError):
        message = None
        asyncio.get_running_loop().remove_reader(conn.fileno())  # EOF stays readable: report it once
    inbox.put_nowait((index, message))


class _Dispatch:
    """One evaluation's bookkeeping in the parent: which task runs where and what is finished."""

    def __init__(self, workers: list[_Worker], tasks: Sequence[Task], slots: list[int],
                 on_result: OnResult | None) -> None:
        self.workers = workers
        self.tasks = {t.id: t for t in tasks}
        self.queue = deque(self.tasks)
        self.slots = slots
        self.on_result = on_result
        self.running: dict[int, set[str]] = {i: set() for i in range(len(workers))}
        self.live = set(range(len(workers)))
        self.unready = set(range(len(workers)))  # not yet answered the job message
        self.refused = False  # some worker could not rebuild the job: no task goes out
        self.exits: dict[int, int | None] = {}
        self.results: dict[str, TaskResult] = {}
        self.placements: dict[str, int] = {}
        self.rebuilt = 0
        self.peak = 0  # most episodes in flight at once

    def handle(self, index: int, reply: Message) -> None:
        kind = reply[0]
        if kind == "job_ready":
            self.rebuilt += 1 if reply[1] else 0
            self.ready(index)
        elif kind == "result":
            self.done(index, reply[1])
        elif kind == "failed":
            self.done(index, self.failed(reply[1], "task_failed", reply[3], exception=reply[2]))

    def ready(self, index: int) -> None:
        """Tasks go out once every worker holds the job, so a job none can rebuild sends none."""
        self.unready.discard(index)
        if not self.unready and not self.refused:
            for live in self.live:
                self.feed(live)

    def refuse(self, index: int) -> None:
        self.refused = True
        self.ready(index)

    @property
    def settled_refusal(self) -> bool:
        """Some worker could not rebuild the job and every worker has answered: none runs a task."""
        return self.refused and not self.unready

    def feed(self, index: int) -> None:
        """Top the worker up to its number of slots."""
        worker = self.workers[index]
        while self.queue and len(self.running[index]) < self.slots[index]:
            task_id = self.queue.popleft()
            if not worker.send(("task", task_id)):
                self.queue.appendleft(task_id)
                return
            self.running[index].add(task_id)
            self.placements[task_id] = worker.pid
            self.peak = max(self.peak, sum(len(r) for r in self.running.values()))

    def done(self, index: int, result: TaskResult) -> None:
        self.running[index].discard(result.task_id)
        self.feed(index)  # before on_result, so the worker is busy again while the caller looks
        self.finish(result)

    def finish(self, result: TaskResult) -> None:
        self.results[result.task_id] = result
        if self.on_result is not None:
            self.on_result(result)

    def failed(self, task_id: str, code: str, message: str, exception: str | None = None) -> TaskResult:
        failure = TaskError(code=code, message=message, exception=exception)
        return TaskResult(task_id=task_id, split=self.tasks[task_id].split, failure=failure)

    def lost(self, index: int, exitcode: int | None) -> None:
        """A worker died: the tasks it was running fail; the queue goes to the others."""
        self.live.discard(index)
        self.exits[index] = exitcode
        pid = self.workers[index].pid
        running, self.running[index] = self.running[index], set()
        log.warning("eval.worker_lost", pid=pid, exit=_describe_exit(exitcode), tasks_failed=len(running),
                    workers_left=len(self.live))
        for task_id in [t for t in self.tasks if t in running]:
            self.finish(self.failed(task_id, "worker_lost", f"evaluation worker {pid} {_describe_exit(exitcode)} "
                                                            "while running this task"))
        if self.live:  # its share of the concurrency passes to a survivor, so the total holds
            heir = min(self.live, key=lambda i: self.slots[i])
            self.slots[heir] += self.slots[index]
            self.slots[index] = 0
            if not self.unready and not self.refused:
                self.feed(heir)
        if index in self.unready:
            self.ready(index)

    def abandon(self) -> None:
        exits = ", ".join(f"worker {self.workers[i].pid} {_describe_exit(code)}" for i, code in self.exits.items())
        while self.queue:
            task_id = self.queue.popleft()
            self.finish(self.failed(task_id, "not_run", f"not run: every evaluation worker process died ({exits})"))


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "closed its pipe"
    if exitcode < 0:
        with contextlib.suppress(ValueError):  # not a known signal number
            return f"was killed by {signal.Signals(-exitcode).name} (exit code {exitcode})"
    return f"exited with code {exitcode}"


def _launch(ctx: Any) -> _Worker:
    worker_commands, commands = ctx.Pipe(duplex=False)
    replies, worker_replies = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_worker_main, args=(worker_commands, worker_replies),
                          name="agentforge-eval-worker", daemon=True)
    process.start()
    # Drop our copies of the worker's ends: holding them would hide its death (no EOF on the pipe).
    worker_commands.close()
    worker_replies.close()
    assert process.pid is not None
    return _Worker(process, commands, replies, process.pid)


def _await_ready(workers: list[_Worker], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting: dict[Any, _Worker] = {w.replies: w for w in workers}
    while waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            pids = ", ".join(str(w.pid) for w in waiting.values())
            raise ConfigError(f"evaluation worker process(es) {pids} did not start within {timeout:.0f} s")
        for conn in wait_for_connections(list(waiting), timeout=left):
            worker = waiting.pop(conn)
            try:
                ready = worker.replies.recv() == ("ready",)
            except (EOFError, OSError):
                ready = False
            if not ready:
                worker.process.join(5)
                raise ConfigError(f"evaluation worker process {worker.pid} failed to start "
                                  f"({_describe_exit(worker.process.exitcode)}; its error is on stderr)")


def _stop(workers: list[_Worker]) -> None:
    for worker in workers:
        worker.send(("stop",))
    for worker in workers:
        _halt(worker)
        _release(worker)


def _reap(worker: _Worker) -> int | None:
    """The exit code of a worker whose pipe closed (making sure it is gone)."""
    worker.process.join(5)
    if worker.process.exitcode is None:
        _halt(worker, grace=0)
    return worker.process.exitcode


def _halt(worker: _Worker, grace: float = 5.0) -> None:
    process = worker.process
    process.join(grace)
    if process.exitcode is None:
        process.terminate()
        process.join(5)
    if process.exitcode is None:
        process.kill()
        process.join()


def _release(worker: _Worker) -> None:
    worker.commands.close()
    worker.replies.close()
    worker.process.close()


# -- inside a worker ------------------------------------------------------------------------------------
def _worker_main(commands: Connection, replies: Connection) -> None:
    """A worker process: import the stack once, say ready, then serve jobs until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the parent, which stops the workers
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # anything printed (by us, a library, a child process) stays off the parent's stdout
    os.close(devnull)
    import importlib

    from agentforge.llm.gateway import import_litellm

    for module in WARM_MODULES:
        importlib.import_module(module)
    import_litellm()
    replies.send(("ready",))
    try:
        asyncio.run(_WorkerLoop(commands, replies).serve())
    finally:
        commands.close()
        replies.close()


class _WorkerLoop:
    """Inside a worker: one asyncio loop that runs each task the parent sends as its own episode."""

    def __init__(self, commands: Connection, replies: Connection) -> None:
        self.commands = commands
        self.replies = replies
        self.job: ResolvedJob | None = None  # the job being served
        self.running: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        from agentforge.llm.gateway import evaluating

        evaluating.set(True)
        inbox: asyncio.Queue[Message | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        loop.add_reader(self.commands.fileno(), self._read, inbox)
        try:
            while True:
                message = await inbox.get()
                if message is None or message[0] == "stop":
                    break
                if message[0] == "job":
                    self.load(message[1])
                elif message[0] == "task":
                    task = asyncio.create_task(self.play(message[1]))
                    self.running.add(task)
                    task.add_done_callback(self.running.discard)
        finally:
            loop.remove_reader(self.commands.fileno())
            for task in self.running:
                task.cancel()
            await asyncio.gather(*self.running, return_exceptions=True)

    def _read(self, inbox: asyncio.Queue[Message | None]) -> None:
        try:
            message: Message | None = self.commands.recv()
        except (EOFError, OSError):  # the parent is gone
            message = None
            asyncio.get_running_loop().remove_reader(self.commands.fileno())
        inbox.put_nowait(message)

    def reply(self, message: Message) -> None:
        with contextlib.suppress(OSError):  # the parent is gone; EOF on the command pipe ends the loop
            self.replies.send(message)

    def load(self, job: EvalJob) -> None:
        from agentforge.evaluation.gc_tuning import tune_process_gc
        from agentforge.evaluation.job import resolve

        try:
            self.job, rebuilt = resolve(job)
        except Exception as exc:  # reported to the parent, which raises it
            self.reply(("job_failed", f"{type(exc).__name__}: {exc}"))
            return
        tune_process_gc(self.job.settings.eval_gc_threshold)  # this process only runs episodes
        self.reply(("job_ready", rebuilt))

    async def play(self, task_id: str) -> None:
        from agentforge.evaluation.executors.base import play

        assert self.job is not None, "tasks come only after the job"
        try:
            result = await play(self.job, self.job.task(task_id))
        except Exception as exc:  # an unknown task id or a bug: this task fails, the worker carries on
            self.reply(("failed", task_id, type(exc).__name__, str(exc)))
            return
        self.reply(("result", result))

