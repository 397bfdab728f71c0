"""Turn (workflow, environment, tasks) into an ``EvalReport``.

Single-turn environments: the observation's fields bind to the workflow's inputs, the workflow's
action output is the one action. Multi-turn environments: the workflow is a policy, run once per
step on ``goal``, ``observation``, ``history`` (and ``available_actions``, ``step``) until the
episode is done or its step limit is spent. The episode's score is its final reward.

A task whose workflow or environment fails scores 0 and is recorded with its error and trace (an
unexpected exception in environment code too, with a logged traceback); only systemic faults (a
workflow that cannot bind to the environment at all) raise.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from agentforge.envs.base import Environment, Observation, Task
from agentforge.errors import AgentforgeError, InputError
from agentforge.evaluation.gc_tuning import relaxed_gc
from agentforge.evaluation.report import EvalReport, TaskResult
from agentforge.llm.gateway import cache_everything
from agentforge.logs import get_logger
from agentforge.runtime.trace import Trace
from agentforge.runtime.workflow import Workflow, run_sync
from agentforge.workflow.spec import WorkflowSpec

log = get_logger(__name__)

POLICY_INPUTS = ("goal", "instruction", "observation", "history", "available_actions", "step")


def action_output(spec: WorkflowSpec) -> str:
    """Which output is the action: ``action``, else ``answer``, else the only or first output."""
    for name in ("action", "answer"):
        if name in spec.outputs:
            return name
    if not spec.outputs:
        raise InputError(f"workflow '{spec.name}' declares no outputs, so it cannot act in an environment")
    return next(iter(spec.outputs))


def check_binding(spec: WorkflowSpec, env: Environment) -> None:
    """Fail fast, before any task runs, if the workflow needs inputs the environment never gives."""
    tasks = env.tasks()
    provided = set(POLICY_INPUTS) | (set(tasks[0].inputs) if tasks else set())
    missing = [name for name, f in spec.input_fields().items()
               if f.required and f.default is None and name not in provided]
    if missing:
        raise InputError(
            f"workflow '{spec.name}' needs input(s) {missing} that environment '{env.name}' does not provide; "
            f"it provides {sorted(provided)}"
        )
    action_output(spec)


def format_history(history: list[tuple[str, str]], limit: int = 12) -> str:
    if not history:
        return "(no actions yet)"
    shown = history[-limit:]
    start = len(history) - len(shown) + 1
    return "\n".join(f"{start + i}. action: {a}\n   result: {o}" for i, (a, o) in enumerate(shown))


def bind_inputs(spec: WorkflowSpec, env: Environment, obs: Observation,
                history: list[tuple[str, str]], task: Task | None = None) -> dict[str, Any]:
    available: dict[str, Any] = {
        **(task.inputs if task is not None else {}),
        "goal": env.instruction,
        "instruction": env.instruction,
        "observation": obs.text,
        "history": format_history(history),
        "available_actions": ", ".join(obs.available_actions or ()),
        "step": len(history) + 1,
        **obs.fields,
    }
    return {name: available[name] for name in spec.inputs if name in available}


class TraceWriter(Protocol):
    """Where ``run_episode`` puts a task's traces; returns the ``trace_path`` to record."""

    def write(self, task_id: str, traces: list[Trace]) -> str: ...


class TraceSink:
    """All episode traces of one evaluation in one JSONL file (one buffered write per task)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh: IO[str] | None = path.open("w", encoding="utf-8")

    def write(self, task_id: str, traces: list[Trace]) -> str:
        return self.write_steps(task_id, [t.model_dump(mode="json") for t in traces])

    def write_steps(self, task_id: str, steps: list[dict[str, Any]]) -> str:
        """Write traces already dumped to JSON data (as worker processes send them back)."""
        assert self._fh is not None
        record = {"task_id": task_id, "steps": steps}
        self._fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        return f"{self.path}#{task_id}"

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


async def run_episode(workflow: Workflow, env: Environment, task: Task, *, model: str | None = None,
                      sink: TraceWriter | None = None) -> TaskResult:
    """Play one task to the end. Never raises for the task's own failures: they are recorded."""
    spec = workflow.spec
    act = action_output(spec)
    result = TaskResult(task_id=task.id, split=task.split)
    traces: list[Trace] = []
    started = time.perf_counter()
    session = env.session()
    limit = max(env.max_steps, int(task.meta.get("max_steps", 0) or 0), 1)
    try:
        obs = await session.areset(task.id)
        history: list[tuple[str, str]] = []
        for _ in range(limit):
            inputs = bind_inputs(spec, env, obs, history, task)
            try:
                run = await workflow.arun(inputs, model=model, save=False, checkpoint=False)
            except AgentforgeError as exc:
                trace = getattr(exc, "trace", None)
                if trace is not None:
                    traces.append(trace)
                raise
            traces.append(run.trace)
            value = run.outputs[act]
            action = value if isinstance(value, str) else json.dumps(value)
            outcome = await session.astep(action)
            result.actions.append(action)
            result.steps += 1
            result.reward = outcome.reward
            if outcome.done:
                break
            history.append((action, outcome.observation.text))
            obs = outcome.observation
        result.score = max(0.0, min(1.0, float(result.reward)))
    except AgentforgeError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        result.score = 0.0
    except Exception as exc:  # a bug in one task's environment code must not lose every other result
        log.warning("eval.episode_crashed", task=task.id, error=repr(exc), exc_info=True)
        result.error = f"{type(exc).__name__} (unexpected, in the environment or a tool): {exc}"
        result.score = 0.0
    finally:
        try:
            await session.aclose()
        except AgentforgeError as exc:  # a failed close is worth a log line, not a failed task
            log.warning("eval.session_close_failed", task=task.id, error=str(exc))
    result.latency_s = time.perf_counter() - started
    for trace in traces:
        result.prompt_tokens += trace.prompt_tokens
        result.completion_tokens += trace.completion_tokens
        result.cost += trace.cost
        result.llm_calls += trace.llm_calls
        result.cached_calls += trace.cached_calls
    if sink is not None:
        result.trace_path = sink.write(task.id, traces)
    return result


@dataclass
class EvalJob:
    """Everything a worker in another process needs to rebuild and run an evaluation."""

    spec_data: dict[str, Any]
    workflow_file: str | None
    env_ref: str | None
    model: str | None
    settings_data: dict[str, Any] = field(default_factory=dict)


OnResult = Callable[[TaskResult], None]


def select_tasks(env: Environment, split: str | None, limit: int | None) -> list[Task]:
    tasks = env.tasks(split)  # type: ignore[arg-type]
    if not tasks:
        splits = sorted({t.split for t in env.tasks()})
        raise InputError(f"environment '{env.name}' has no tasks in split '{split}' (it has: {', '.join(splits)})")
    return tasks[:limit] if limit is not None else tasks


async def aevaluate(
    workflow: Workflow,
    env: Environment | str,
    *,
    split: str | None = "val",
    limit: int | None = None,
    concurrency: int = 8,
    model: str | None = None,
    executor: Any = None,
    seed: int = 0,
    save_traces: bool = True,
    on_result: OnResult | None = None,
    on_start: Callable[[int], None] | None = None,
) -> EvalReport:
    """Evaluate ``workflow`` on ``split`` of ``env``; tasks run in a fixed order under ``concurrency``."""
    from agentforge.evaluation.executors import AsyncioExecutor

    env_ref = env if isinstance(env, str) else getattr(env, "ref", None)
    if isinstance(env, str):
        from agentforge.envs.registry import load_env

        env = load_env(env)
    check_binding(workflow.spec, env)
    tasks = select_tasks(env, split, limit)
    if on_start is not None:
        on_start(len(tasks))
    executor = executor or AsyncioExecutor()
    eval_id = "eval-" + time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
    report = EvalReport(
        eval_id=eval_id, workflow=workflow.spec.name, workflow_hash=workflow.spec.hash, env=env.name,
        split=split or "all", model=model, executor=executor.name, concurrency=concurrency, seed=seed,
        started_at=time.time(),
    )
    sink = TraceSink(workflow.settings.runs_dir / eval_id / "traces.jsonl") if save_traces else None
    job = EvalJob(
        spec_data=workflow.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        workflow_file=workflow.spec.source_file, env_ref=env_ref, model=model,
        settings_data=workflow.settings.model_dump(mode="json"),
    )
    started = time.perf_counter()
    token = cache_everything.set(True)
    try:
        with relaxed_gc(workflow.settings.eval_gc_threshold):
            results = await executor.amap(
                job, workflow, env, tasks,
                run_one=lambda task: run_episode(workflow, env, task, model=model, sink=sink),
                concurrency=concurrency, on_result=on_result, sink=sink,
            )
    finally:
        cache_everything.reset(token)
        if sink is not None:
            sink.close()
    report.results = results
    report.wall_s = time.perf_counter() - started
    if sink is not None:
        report.traces_path = str(sink.path)
        report.save(sink.path.parent / "report.json")
    log.info("eval.finished", **report.summary())
    return report


def evaluate(workflow: Workflow, env: Environment | str, **kwargs: Any) -> EvalReport:
    return run_sync(aevaluate(workflow, env, **kwargs))
