"""Where evaluation episodes run: asyncio tasks in this process, persistent worker processes on this
machine, or Ray workers in a cluster.

An executor takes the job and the tasks and returns one ``TaskResult`` per task, in task order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import signal
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_for_connections
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from agentforge.envs.base import Environment, Task
from agentforge.errors import ConfigError
from agentforge.evaluation.gc_tuning import relaxed_gc, tune_process_gc
from agentforge.evaluation.report import TaskResult
from agentforge.logs import get_logger

if TYPE_CHECKING:
    from agentforge.runtime.trace import Trace

log = get_logger(__name__)

RunOne = Callable[[Task], Awaitable[TaskResult]]
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
WORKER_START_TIMEOUT_S = 180.0
# What a worker imports before it reports ready, so an evaluation never waits for it.
WARM_MODULES = ("agentforge.runtime.workflow", "agentforge.evaluation.evaluator", "agentforge.envs.registry",
                "agentforge.workflow.loader")
JOBS_KEPT_PER_WORKER = 4


class Executor(Protocol):
    name: str

    async def amap(self, job: Any, workflow: Any, env: Environment, tasks: Sequence[Task], *, run_one: RunOne,
                   concurrency: int, on_result: Callable[[TaskResult], None] | None,
                   sink: Any) -> list[TaskResult]: ...


class AsyncioExecutor:
    """Episodes as asyncio tasks in this process, at most ``concurrency`` at once."""

    name = "asyncio"

    async def amap(self, job: Any, workflow: Any, env: Environment, tasks: Sequence[Task], *, run_one: RunOne,
                   concurrency: int, on_result: Callable[[TaskResult], None] | None = None,
                   sink: Any = None) -> list[TaskResult]:
        limit = asyncio.Semaphore(max(1, concurrency))

        async def one(task: Task) -> TaskResult:
            async with limit:
                result = await run_one(task)
            if on_result is not None:
                on_result(result)
            return result

        return list(await asyncio.gather(*(one(t) for t in tasks)))


class RayExecutor:
    """Episodes fanned out over a Ray cluster: each worker rebuilds the workflow and the environment
    from the job (so the environment must be named by a YAML path or a built-in name) and runs its
    chunk of tasks with asyncio; results and traces come back to this process. At most ``num_workers``
    chunks run at once, each with its share of ``concurrency``. ``address=None`` starts a local Ray
    on 127.0.0.1."""

    name = "ray"

    def __init__(self, address: str | None = None, num_workers: int | None = None, chunk_size: int | None = None):
        self.address = address
        self.num_workers = num_workers or max(1, (os.cpu_count() or 2))
        self.chunk_size = chunk_size

    def _ray(self) -> Any:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if not self.address:
            # A local cluster must stay on loopback. Ray turns 127.0.0.1 into the machine's
            # routable address unless it runs in single-machine mode, which this variable selects.
            os.environ.setdefault(LOCAL_ONLY_ENV, "0")
        try:
            import ray
        except ImportError as exc:
            raise ConfigError("--executor ray needs Ray: pip install 'agentforge[ray]'") from exc
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                from ray._private import ray_constants

                ray_constants.ENABLE_RAY_CLUSTER = False  # in case Ray was imported before we set the variable
                ray.init(num_cpus=self.num_workers, include_dashboard=False, log_to_driver=False)
        return ray

    async def amap(self, job: Any, workflow: Any, env: Environment, tasks: Sequence[Task], *, run_one: RunOne,
                   concurrency: int, on_result: Callable[[TaskResult], None] | None = None,
                   sink: Any = None) -> list[TaskResult]:
        if job.env_ref is None:
            raise ConfigError("the Ray executor rebuilds the environment in each worker: name it by a YAML path or "
                              "a built-in name (e.g. --env arithmetic), not as an object")
        ray = self._ray()
        remote = ray.remote(_evaluate_chunk)
        size = self.chunk_size or max(1, math.ceil(len(tasks) / (self.num_workers * 4)))
        chunks = [list(tasks[i:i + size]) for i in range(0, len(tasks), size)]
        job_data = asdict(job)
        collect = sink is not None
        # One chunk in flight per lane, each lane with its share of the concurrency: never more at once.
        lanes = split_slots(concurrency, self.num_workers)
        waiting = deque(chunks)
        pending: dict[Any, int] = {}

        def submit(lane: int) -> None:
            if waiting and lanes[lane]:
                ids = [t.id for t in waiting.popleft()]
                pending[remote.remote(job_data, ids, lanes[lane], collect)] = lane

        for lane in range(len(lanes)):
            submit(lane)
        by_id: dict[str, TaskResult] = {}
        while pending:
            done, _ = await asyncio.to_thread(ray.wait, list(pending), num_returns=1)
            for ref in done:
                submit(pending.pop(ref))
                for data, steps in await asyncio.to_thread(ray.get, ref):
                    result = TaskResult.model_validate(data)
                    if collect:  # the traces come back with the result and land in this evaluation's file
                        result.trace_path = sink.write_steps(result.task_id, steps)
                    by_id[result.task_id] = result
                    if on_result is not None:
                        on_result(result)
        return [by_id[t.id] for t in tasks]


@dataclass
class _Worker:
    """The parent's handle on one worker process: commands go down one pipe, replies come up another."""

    process: BaseProcess
    commands: Connection
    replies: Connection
    pid: int

    def send(self, message: tuple[Any, ...]) -> bool:
        """False if the worker is gone; its death itself is noticed on the reply pipe."""
        try:
            self.commands.send(message)
        except OSError:
            return False
        return True


class ProcessExecutor:
    """Episodes fanned out over persistent worker processes on this machine, so an evaluation uses
    every core (one process caps out on litellm's per-call CPU cost at high concurrency).

    ``start()`` spawns ``workers`` processes (default: one per CPU) and waits until each has imported
    the evaluation stack; ``amap`` starts them if needed; ``close()`` (or leaving a ``with`` block)
    stops them. Each worker rebuilds the workflow and the environment from the job (so the
    environment must be named by a YAML path or a built-in name), keeps the rebuilt job for the next
    evaluation, runs its share of ``concurrency`` (the shares add up to it exactly) and asks for more tasks as slots
    free up. Results and traces stream back to this process as each episode ends. A worker that dies
    fails the tasks it was running; the others take the rest.
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
        self._pumps: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def pids(self) -> list[int]:
        """Process ids of the running workers."""
        return [w.pid for w in self._pool if w.process.exitcode is None]

    def start(self) -> ProcessExecutor:
        """Spawn the missing workers (all the first time, replacements for dead ones later) and wait
        until each is ready."""
        with self._lock:
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
                for worker in fresh:
                    worker.send(("stop",))
                for worker in fresh:
                    _halt(worker, grace=1.0)
                    _release(worker)
                raise
            self._pool.extend(fresh)
            log.info("eval.workers_started", pids=[w.pid for w in fresh],
                     seconds=round(time.perf_counter() - started, 2))
        return self

    def close(self) -> None:
        """Stop the workers. The executor can be started again."""
        with self._lock:
            pool, self._pool = self._pool, []
            for worker in pool:
                worker.send(("stop",))
            for worker in pool:
                _halt(worker)
            for pump in self._pumps:  # left over only by an interrupted evaluation
                pump.join(timeout=10)
            self._pumps = []
            for worker in pool:
                _release(worker)

    def __enter__(self) -> ProcessExecutor:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    async def amap(self, job: Any, workflow: Any, env: Environment, tasks: Sequence[Task], *, run_one: RunOne,
                   concurrency: int, on_result: Callable[[TaskResult], None] | None = None,
                   sink: Any = None) -> list[TaskResult]:
        if job.env_ref is None:
            raise ConfigError("the process executor rebuilds the environment in each worker: name it by a YAML "
                              "path or a built-in name (e.g. --env arithmetic), not as an object")
        if not tasks:
            return []
        await asyncio.to_thread(self.start)
        try:
            job_data = asdict(job)
            key = _job_key(job_data, os.getcwd(), env)
            return await self._dispatch(key, job_data, tasks, concurrency, on_result, sink)
        except BaseException:
            if self._pumps:  # interrupted mid-round: workers may be mid-episode with stale replies queued
                self.close()
            raise

    async def _dispatch(self, key: str, job_data: dict[str, Any], tasks: Sequence[Task], concurrency: int,
                        on_result: Callable[[TaskResult], None] | None, sink: Any) -> list[TaskResult]:
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[tuple[int, tuple[Any, ...] | None]] = asyncio.Queue()
        workers = list(self._pool)
        plan = _Dispatch(workers, tasks, split_slots(concurrency, len(workers)), on_result, sink)
        self.placements = plan.placements  # filled as tasks are handed out
        self._pumps = [threading.Thread(target=_pump, args=(w.replies, _poster(loop, inbox, i), "end"),
                                        name=f"agentforge-eval-replies-{w.pid}", daemon=True)
                       for i, w in enumerate(workers)]
        for pump in self._pumps:
            pump.start()
        cwd = os.getcwd()  # the workers resolve the environment's relative paths from here
        message = ("job", key, job_data, cwd, dict(os.environ), sink is not None)
        for worker in workers:
            worker.send(message)
        failure: str | None = None
        while len(plan.results) < len(plan.tasks):
            if not plan.live:
                plan.abandon()
                break
            index, reply = await inbox.get()
            if reply is None:
                plan.lost(index, await asyncio.to_thread(_reap, workers[index]))
            elif reply[0] == "job_failed":
                failure = f"evaluation worker {workers[index].pid} could not rebuild the job: {reply[1]}"
                break
            else:
                plan.handle(index, reply)
        # A live worker answers "end" once its running episodes are over (none by now); that ends its pump.
        for index in plan.live:
            workers[index].send(("end",))
        await asyncio.to_thread(self._join_pumps, workers)
        if failure is not None:
            raise ConfigError(failure)
        self.rebuilt, self.peak_in_flight = plan.rebuilt, plan.peak
        return [plan.results[t.id] for t in tasks]

    def _join_pumps(self, workers: list[_Worker]) -> None:
        for pump, worker in zip(self._pumps, workers, strict=True):
            pump.join(timeout=30)
            if pump.is_alive():  # the worker ignores "end": it is stuck, so it goes
                log.warning("eval.worker_stuck", pid=worker.pid)
                _halt(worker, grace=0)
                pump.join()
        self._pumps = []


class _Dispatch:
    """One evaluation's bookkeeping in the parent: which task runs where and what is finished."""

    def __init__(self, workers: list[_Worker], tasks: Sequence[Task], slots: list[int],
                 on_result: Callable[[TaskResult], None] | None, sink: Any) -> None:
        self.workers = workers
        self.tasks = {t.id: t for t in tasks}
        self.queue = deque(self.tasks)
        self.slots = slots
        self.on_result = on_result
        self.sink = sink
        self.running: dict[int, set[str]] = {i: set() for i in range(len(workers))}
        self.live = set(range(len(workers)))
        self.unready = set(range(len(workers)))  # not yet answered the job message
        self.exits: dict[int, int | None] = {}
        self.results: dict[str, TaskResult] = {}
        self.placements: dict[str, int] = {}
        self.rebuilt = 0
        self.peak = 0  # most episodes in flight at once

    def handle(self, index: int, reply: tuple[Any, ...]) -> None:
        kind = reply[0]
        if kind == "job_ready":
            self.rebuilt += 1 if reply[1] else 0
            self.ready(index)
        elif kind == "result":
            _, task_id, data, steps = reply
            result = TaskResult.model_validate(data)
            if self.sink is not None and steps is not None:
                result.trace_path = self.sink.write_steps(task_id, steps)
            self.done(index, result)
        elif kind == "failed":
            self.done(index, self.failed(reply[1], reply[2]))

    def ready(self, index: int) -> None:
        """Tasks go out once every worker holds the job, so a job none can rebuild sends none."""
        self.unready.discard(index)
        if not self.unready:
            for live in self.live:
                self.feed(live)

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

    def failed(self, task_id: str, error: str) -> TaskResult:
        return TaskResult(task_id=task_id, split=self.tasks[task_id].split, error=error)

    def lost(self, index: int, exitcode: int | None) -> None:
        """A worker died: the tasks it was running fail; the queue goes to the others."""
        self.live.discard(index)
        self.exits[index] = exitcode
        pid = self.workers[index].pid
        running, self.running[index] = self.running[index], set()
        log.warning("eval.worker_lost", pid=pid, exit=_describe_exit(exitcode), tasks_failed=len(running),
                    workers_left=len(self.live))
        for task_id in [t for t in self.tasks if t in running]:
            self.finish(self.failed(task_id, f"evaluation worker {pid} {_describe_exit(exitcode)} "
                                             "while running this task"))
        if self.live:  # its share of the concurrency passes to a survivor, so the total holds
            heir = min(self.live, key=lambda i: self.slots[i])
            self.slots[heir] += self.slots[index]
            self.slots[index] = 0
            if not self.unready:
                self.feed(heir)
        if index in self.unready:
            self.ready(index)

    def abandon(self) -> None:
        exits = ", ".join(f"worker {self.workers[i].pid} {_describe_exit(code)}" for i, code in self.exits.items())
        while self.queue:
            task_id = self.queue.popleft()
            self.finish(self.failed(task_id, f"not run: every evaluation worker process died ({exits})"))


def split_slots(concurrency: int, workers: int) -> list[int]:
    """Each worker's share of the episodes in flight: the shares add up to ``concurrency`` (at least 1)."""
    total = max(1, concurrency)
    return [total // workers + (1 if i < total % workers else 0) for i in range(workers)]


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


def _poster(loop: asyncio.AbstractEventLoop, inbox: asyncio.Queue[Any],
            index: int | None = None) -> Callable[[tuple[Any, ...] | None], None]:
    """A thread-safe way into ``inbox``: messages are tagged with ``index`` when one is given."""

    def post(message: tuple[Any, ...] | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening any more
            loop.call_soon_threadsafe(inbox.put_nowait, message if index is None else (index, message))

    return post


def _pump(conn: Connection, deliver: Callable[[tuple[Any, ...] | None], None], last: str) -> None:
    """A thread: pass each message on ``conn`` to ``deliver`` until one of kind ``last``; None is EOF."""
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            deliver(None)
            return
        deliver(message)
        if message[0] == last:
            return


def _job_key(job_data: dict[str, Any], cwd: str, env: Environment) -> str:
    """What a worker's rebuilt job is cached under: the spec, the settings, and the environment's
    definition file and task content, so an edited YAML or data file means a rebuild."""
    env_file = Path(cwd, job_data["env_ref"])
    stamp = env_file.stat().st_mtime_ns if env_file.is_file() else None
    tasks = hashlib.sha256()
    for task in env.tasks():
        tasks.update(json.dumps(task.model_dump(mode="json"), sort_keys=True, default=str).encode())
    parts = [job_data["spec_data"], job_data["workflow_file"], job_data["env_ref"], job_data["settings_data"],
             cwd, stamp, tasks.hexdigest()]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _rebuild(job_data: dict[str, Any]) -> tuple[Any, Environment, Any]:
    """The workflow, environment and settings an ``EvalJob`` (as a dict) names, rebuilt in a worker."""
    from agentforge.config import Settings, use_settings
    from agentforge.envs.registry import load_env
    from agentforge.runtime.workflow import Workflow
    from agentforge.workflow.loader import SourceMap, spec_from_data

    settings = Settings.model_validate(job_data["settings_data"])
    with use_settings(settings):
        spec = spec_from_data(job_data["spec_data"], SourceMap(file=job_data["workflow_file"],
                                                               data=job_data["spec_data"]))
        workflow = Workflow(spec, settings=settings, validate=False)
        env = load_env(job_data["env_ref"])
    return workflow, env, settings


def _evaluate_chunk(job_data: dict[str, Any], task_ids: list[str], concurrency: int,
                    collect: bool = False) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Runs inside a Ray worker: rebuild, evaluate a chunk, return each result (and its traces) as data."""
    from agentforge.config import use_settings
    from agentforge.evaluation.evaluator import run_episode
    from agentforge.llm.gateway import cache_everything

    workflow, env, settings = _rebuild(job_data)
    with use_settings(settings), relaxed_gc(settings.eval_gc_threshold):

        async def main() -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
            cache_everything.set(True)
            limit = asyncio.Semaphore(concurrency)

            async def one(task_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
                collector = _StepCollector() if collect else None
                async with limit:
                    res = await run_episode(workflow, env, env.task(task_id), model=job_data["model"],
                                            sink=collector)
                return res.model_dump(mode="json"), collector.steps if collector is not None else []

            return list(await asyncio.gather(*(one(t) for t in task_ids)))

        return asyncio.run(main())


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


class _StepCollector:
    """Keeps one episode's traces as JSON data for the parent, whose ``TraceSink`` writes them."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    def write(self, task_id: str, traces: list[Trace]) -> str:
        self.steps = [t.model_dump(mode="json") for t in traces]
        return ""


class _WorkerLoop:
    """Inside a worker: one asyncio loop that runs each task the parent sends as its own episode."""

    def __init__(self, commands: Connection, replies: Connection) -> None:
        self.commands = commands
        self.replies = replies
        self.jobs: OrderedDict[str, tuple[Any, Environment, Any]] = OrderedDict()
        self.job: tuple[Any, Environment, Any] | None = None
        self.model: str | None = None
        self.collect = False
        self.running: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        from agentforge.llm.gateway import cache_everything

        cache_everything.set(True)
        inbox: asyncio.Queue[tuple[Any, ...] | None] = asyncio.Queue()
        pump = threading.Thread(target=_pump, args=(self.commands, _poster(asyncio.get_running_loop(), inbox), "stop"),
                                name="agentforge-eval-commands", daemon=True)
        pump.start()
        while True:
            message = await inbox.get()
            if message is None or message[0] == "stop":
                break
            if message[0] == "job":
                self.load(*message[1:])
            elif message[0] == "task":
                task = asyncio.create_task(self.play(message[1]))
                self.running.add(task)
                task.add_done_callback(self.running.discard)
            elif message[0] == "end":
                if self.running:
                    await asyncio.wait(set(self.running))
                self.reply(("end",))
        for task in self.running:
            task.cancel()
        await asyncio.gather(*self.running, return_exceptions=True)

    def reply(self, message: tuple[Any, ...]) -> None:
        with contextlib.suppress(OSError):  # the parent is gone; EOF on the command pipe ends the loop
            self.replies.send(message)

    def load(self, key: str, job_data: dict[str, Any], cwd: str, environ: dict[str, str], collect: bool) -> None:
        """Take on a job: the parent's working directory and environment, and the rebuilt workflow."""
        try:
            for name in set(os.environ) - set(environ):
                del os.environ[name]
            os.environ.update(environ)
            os.chdir(cwd)
            job = self.jobs.get(key)
            rebuilt = job is None
            if job is None:
                job = self.jobs[key] = _rebuild(job_data)
                while len(self.jobs) > JOBS_KEPT_PER_WORKER:
                    self.jobs.popitem(last=False)
            else:
                self.jobs.move_to_end(key)
        except Exception as exc:  # reported to the parent, which raises it
            self.reply(("job_failed", f"{type(exc).__name__}: {exc}"))
            return
        self.job, self.model, self.collect = job, job_data["model"], collect
        tune_process_gc(job[2].eval_gc_threshold)  # this process only runs episodes
        self.reply(("job_ready", rebuilt))

    async def play(self, task_id: str) -> None:
        from agentforge.config import use_settings
        from agentforge.evaluation.evaluator import run_episode

        assert self.job is not None
        workflow, env, settings = self.job
        collector = _StepCollector() if self.collect else None
        try:
            with use_settings(settings):
                result = await run_episode(workflow, env, env.task(task_id), model=self.model, sink=collector)
        except Exception as exc:  # an unknown task id or a bug: this task fails, the worker carries on
            self.reply(("failed", task_id, f"{type(exc).__name__}: {exc}"))
            return
        data = result.model_dump(mode="json", exclude={"trace_path"})
        self.reply(("result", task_id, data, collector.steps if collector is not None else None))
