"""Turn (workflow, environment, tasks) into an ``EvalReport``.

Single-turn environments: the observation's fields bind to the workflow's inputs, the workflow's
action output is the one action. Multi-turn environments: the workflow is a policy, run once per
step on ``goal``, ``observation``, ``history`` (and ``available_actions``, ``step``) until the
episode is done or its step limit is spent. The episode's score is its final reward. ``goal`` is
carried from the reset to every step; ``history`` holds the actions actually sent (``info["action_sent"]``)
and is capped at ``eval_history_tokens`` (estimated as characters/4), each cut noted in ``TaskResult.notes``.

Each task gives evidence, a ``TaskResult``: its inputs, the in-memory traces (one per step), the
last step's info minus secret fields, the metric's feedback and a typed ``TaskError``. A task whose
workflow or environment fails scores 0 and is recorded with its error and traces (an unexpected
exception in environment code too, with a logged traceback); so is an empty output (``empty_output``,
``no_output`` for a code node that printed nothing) and an answer the metric could not parse
(``unparsable_answer``). Only systemic faults (a workflow that cannot bind to the environment at
all) raise. The evaluator writes nothing itself: pass an ``EvalSink`` (``TraceSink`` for a run folder).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from agentforge._sync import run_sync
from agentforge.envs.base import Environment, Observation, Task
from agentforge.errors import AgentforgeError, InputError
from agentforge.evaluation.gc_tuning import relaxed_gc
from agentforge.evaluation.report import EvalReport, TaskError, TaskResult
from agentforge.llm.gateway import cache_everything
from agentforge.logs import get_logger
from agentforge.runtime.trace import Trace
from agentforge.runtime.workflow import Workflow
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


CHARS_PER_TOKEN = 4  # a cheap, tokenizer-free estimate: English text averages about four characters a token
DEFAULT_HISTORY_TOKENS = 2000


def estimate_tokens(text: str) -> int:
    """About how many tokens ``text`` takes: its length over :data:`CHARS_PER_TOKEN`, rounded up."""
    return -(-len(text) // CHARS_PER_TOKEN)


def render_history(history: list[tuple[str, str]], *, limit: int = 12,
                   max_tokens: int = DEFAULT_HISTORY_TOKENS) -> tuple[str, str | None]:
    """The last ``limit`` steps, newest kept first, within about ``max_tokens`` tokens; and a note saying
    what the token cap cut (None when nothing was cut)."""
    if not history:
        return "(no actions yet)", None
    shown = history[-limit:]
    start = len(history) - len(shown) + 1
    budget = max_tokens * CHARS_PER_TOKEN
    kept: list[str] = []
    used = 0
    dropped = 0
    clipped = 0
    for i in range(len(shown) - 1, -1, -1):
        action, result = shown[i]
        entry = f"{start + i}. action: {action}\n   result: {result}"
        if used + len(entry) > budget:
            if not kept:  # the newest step alone is over the cap: keep its head
                clipped = len(entry) - budget
                kept.append(entry[:budget] + " [...]")
                dropped = i
            else:
                dropped = i + 1
            break
        kept.append(entry)
        used += len(entry) + 1
    if not dropped and not clipped:
        return "\n".join(reversed(kept)), None
    what = []
    if dropped:
        what.append(f"dropped {dropped} earlier step(s)")
    if clipped:
        what.append(f"cut {clipped} characters from step {len(history)}")
    note = (f"history capped at {max_tokens} tokens (estimated as characters/{CHARS_PER_TOKEN}): "
            + " and ".join(what))
    return "\n".join(reversed(kept)), note


def format_history(history: list[tuple[str, str]], limit: int = 12,
                   max_tokens: int = DEFAULT_HISTORY_TOKENS) -> str:
    return render_history(history, limit=limit, max_tokens=max_tokens)[0]


def bind_inputs(spec: WorkflowSpec, env: Environment, obs: Observation,
                history: list[tuple[str, str]], task: Task | None = None, *, goal: str | None = None,
                history_text: str | None = None) -> dict[str, Any]:
    """A policy step's inputs. ``goal`` is the episode's goal (:func:`episode_goal`), carried from the reset
    to every step (TextCraft's target and recipes are given only then); without one it is the instruction."""
    available: dict[str, Any] = {
        **(task.inputs if task is not None else {}),
        "goal": goal if goal is not None else env.instruction,
        "instruction": env.instruction,
        "observation": obs.text,
        "history": history_text if history_text is not None else format_history(history),
        "available_actions": ", ".join(obs.available_actions or ()),
        "step": len(history) + 1,
        **obs.fields,
    }
    return {name: available[name] for name in spec.inputs if name in available}


def episode_goal(env: Environment, obs: Observation) -> str:
    """The goal an episode carries through its steps, as AgentGym's own client keeps it at the head of
    the conversation: the environment's instruction, then the reset observation (the server's task text,
    e.g. TextCraft's crafting commands and goal item), or the observation's ``goal`` field if it has one."""
    given = obs.fields.get("goal")
    task_text = given if isinstance(given, str) and given.strip() else obs.text
    return "\n\n".join(part for part in (env.instruction.strip(), task_text.strip()) if part)


class EvalSink(Protocol):
    """Where an evaluation's evidence goes, if anywhere: told when the evaluation opens, given each
    ``TaskResult`` (with its traces) as it arrives in the calling process, told when it closes. The
    evaluator writes nothing without one; ``TraceSink`` is the run-folder implementation."""

    def open(self, report: EvalReport) -> None: ...

    def write(self, result: TaskResult) -> str | None:
        """Keep one task's evidence; return where its traces went (recorded as ``trace_path``)."""
        ...

    def close(self, report: EvalReport) -> None: ...


class TraceSink:
    """``<root>/<eval_id>/traces.jsonl`` (one line of traces per task, one buffered write each) and
    ``<root>/<eval_id>/report.json`` at the end: what ``agentforge eval`` keeps under ``runs/``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path: Path | None = None
        self._fh: IO[str] | None = None

    def open(self, report: EvalReport) -> None:
        self.path = self.root / report.eval_id / "traces.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("w", encoding="utf-8")
        report.traces_path = str(self.path)

    def write(self, result: TaskResult) -> str:
        assert self._fh is not None and self.path is not None, "TraceSink.write before open"
        steps = [t.model_dump(mode="json") for t in result.traces]
        self._fh.write(json.dumps({"task_id": result.task_id, "steps": steps}, ensure_ascii=False, default=str)
                       + "\n")
        return f"{self.path}#{result.task_id}"

    def close(self, report: EvalReport) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self.path is not None:
            report.save(self.path.parent / "report.json")


def action_text(value: Any) -> str:
    """An output as the action text an environment reads. Integral floats are written as integers
    (``5.0`` -> ``"5"``), at any depth, so a typed ``float`` answer meets an exact-match gold ``5``."""
    if isinstance(value, str):
        return value
    return json.dumps(_integral(value), ensure_ascii=False)


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_integral(v) for v in value]
    return value


def error_record(exc: AgentforgeError) -> TaskError:
    """A raised error as a typed record: the root cause's code where a node wrapped it."""
    node = exc.fields.get("node")
    cause = exc.fields.get("cause")
    return TaskError(code=str(cause or exc.code), message=exc.message, node=str(node) if node else None,
                     exception=type(exc).__name__)


def empty_output(spec: WorkflowSpec, outputs: dict[str, Any], trace: Trace) -> TaskError | None:
    """A declared output that came back empty (None or blank text), as a typed error naming its node."""
    for name in spec.outputs:
        value = outputs.get(name)
        if value is not None and not (isinstance(value, str) and not value.strip()):
            continue
        node = next((n for n in reversed(trace.nodes) if name in n.outputs), None)
        if node is not None and node.kind == "code":
            why = f" (it failed and continued: {node.error})" if node.error else ""
            return TaskError(code="no_output", node=node.node,
                             message=f"code node '{node.node}' printed nothing for output '{name}'{why}")
        where = f" (from node '{node.node}')" if node is not None else ""
        return TaskError(code="empty_output", node=node.node if node is not None else None,
                         message=f"the workflow's output '{name}' is empty{where}")
    return None


def _add_usage(result: TaskResult, trace: Trace) -> None:
    result.prompt_tokens += trace.prompt_tokens
    result.reused_prompt_tokens += trace.reused_prompt_tokens
    result.completion_tokens += trace.completion_tokens
    result.cached_prompt_tokens += trace.cached_prompt_tokens
    result.cached_completion_tokens += trace.cached_completion_tokens
    result.cost += trace.cost
    result.cached_cost += trace.cached_cost
    result.llm_calls += trace.llm_calls
    result.cached_calls += trace.cached_calls


async def run_episode(workflow: Workflow, env: Environment, task: Task, *, model: str | None = None) -> TaskResult:
    """Play one task to the end and return its evidence (traces included). Never raises for the task's
    own failures: they are recorded as a typed error and score 0."""
    spec = workflow.spec
    act = action_output(spec)
    result = TaskResult(task_id=task.id, split=task.split, inputs=dict(task.inputs), spec_hash=spec.hash)
    started = time.perf_counter()
    session = env.session()
    limit = max(env.max_steps, int(task.meta.get("max_steps", 0) or 0), 1)
    max_history_tokens = getattr(workflow.settings, "eval_history_tokens", DEFAULT_HISTORY_TOKENS)
    try:
        obs = await session.areset(task.id)
        goal = episode_goal(env, obs)
        history: list[tuple[str, str]] = []
        for _ in range(limit):
            history_text, cut = render_history(history, max_tokens=max_history_tokens)
            inputs = bind_inputs(spec, env, obs, history, task, goal=goal, history_text=history_text)
            run = await workflow.aexecute(inputs, model=model)
            if cut is not None:
                result.notes.append(f"step {len(history) + 1}: {cut}")
            result.traces.append(run.trace)
            if run.exception is not None:
                result.failure = error_record(run.exception)
                break
            empty = empty_output(spec, run.outputs, run.trace)
            if empty is not None:
                result.failure = empty
                break
            action = action_text(run.outputs[act])
            outcome = await session.astep(action)
            result.actions.append(action)
            result.steps += 1
            result.reward = outcome.reward
            result.info = env.public(outcome.info)
            result.feedback = outcome.feedback
            if outcome.done:
                if not outcome.parsed:
                    result.failure = TaskError(code="unparsable_answer", message=outcome.feedback or
                                               f"the metric could not read an answer from {action[:200]!r}")
                break
            sent = outcome.info.get("action_sent")  # what the env acted on, e.g. the line an adapter extracted
            history.append((sent if isinstance(sent, str) else action, outcome.observation.text))
            obs = outcome.observation
    except AgentforgeError as exc:
        result.failure = error_record(exc)
    except Exception as exc:  # a bug in one task's environment code must not lose every other result
        log.warning("eval.episode_crashed", task=task.id, error=repr(exc), exc_info=True)
        result.failure = TaskError(code="unexpected", exception=type(exc).__name__,
                                   message=f"unexpected, in the environment or a tool: {exc}")
    finally:
        try:
            await session.aclose()
        except AgentforgeError as exc:  # a failed close is worth a log line, not a failed task
            log.warning("eval.session_close_failed", task=task.id, error=str(exc))
    result.score = 0.0 if result.failure is not None else max(0.0, min(1.0, float(result.reward)))
    result.latency_s = time.perf_counter() - started
    for trace in result.traces:
        _add_usage(result, trace)
    return result


OnResult = Callable[[TaskResult], None]
Policy = Callable[[Task], WorkflowSpec | Workflow]  # a per-task choice of workflow (e.g. EGuR strategies)


def select_tasks(env: Environment, split: str | None, limit: int | None,
                 task_ids: Sequence[str] | None = None) -> list[Task]:
    """The tasks of ``split`` (all splits when None), the first ``limit``; or exactly ``task_ids``, in that order."""
    if task_ids is not None:
        by_id = {t.id: t for t in env.tasks()}
        unknown = [t for t in task_ids if t not in by_id]
        if unknown:
            raise InputError(f"environment '{env.name}' has no task(s) {unknown[:5]}")
        return [by_id[t] for t in task_ids][:limit]
    tasks = env.tasks(split)  # type: ignore[arg-type]
    if not tasks:
        splits = sorted({t.split for t in env.tasks()})
        raise InputError(f"environment '{env.name}' has no tasks in split '{split}' (it has: {', '.join(splits)})")
    return tasks[:limit] if limit is not None else tasks


class _WorkflowsByHash:
    """The workflows of one evaluation, one per spec hash, each built (and compiled) once."""

    def __init__(self, base: Workflow | None) -> None:
        self.base = base
        self.by_hash: dict[str, Workflow] = {base.spec.hash: base} if base is not None else {}

    def get(self, chosen: WorkflowSpec | Workflow) -> Workflow:
        if isinstance(chosen, Workflow):
            return self.by_hash.setdefault(chosen.spec.hash, chosen)
        found = self.by_hash.get(chosen.hash)
        if found is None:
            base = self.base
            found = Workflow(chosen, settings=base.settings if base else None, gateway=base.gateway if base else None,
                             tools=base.tools if base else None)
            self.by_hash[chosen.hash] = found
        return found


async def aevaluate(
    workflow: Workflow | None,
    env: Environment | str,
    *,
    policy: Policy | None = None,
    split: str | None = "val",
    limit: int | None = None,
    task_ids: Sequence[str] | None = None,
    concurrency: int = 8,
    model: str | None = None,
    executor: Any = None,
    seed: int = 0,
    sink: EvalSink | None = None,
    env_ref: str | Path | None = None,
    on_result: OnResult | None = None,
    on_start: Callable[[int], None] | None = None,
) -> EvalReport:
    """Evaluate ``workflow`` on ``split`` of ``env`` (or on exactly ``task_ids``); tasks run in a fixed order
    under ``concurrency``.

    ``policy`` (task -> spec or workflow) picks a workflow per task instead, called here once per task
    with the task's public view (no answer, no secret meta); each distinct spec (by content hash) is
    built and compiled once. ``workflow`` is then the default and lends its settings, gateway and tools
    (it may be None). Nothing is written unless a ``sink`` is given.
    ``env_ref`` names where worker processes load the environment from (implied when ``env`` is a name).
    """
    from agentforge.evaluation.executors import AsyncioExecutor
    from agentforge.evaluation.job import bind, build_job

    if isinstance(env, str):
        from agentforge.envs.registry import load_env

        env_ref = env_ref or env
        env = load_env(env)
    if workflow is None and policy is None:
        raise InputError("evaluate needs a workflow or a policy")
    tasks = select_tasks(env, split, limit, task_ids)
    compiled = _WorkflowsByHash(workflow)
    assignment: dict[str, str] = {}
    if policy is not None:
        for task in tasks:
            assignment[task.id] = compiled.get(policy(env.public_task(task))).spec.hash
    workflows = list(compiled.by_hash.values())
    for wf in workflows:
        check_binding(wf.spec, env)
    if on_start is not None:
        on_start(len(tasks))
    executor = executor or AsyncioExecutor()
    default = workflows[0]
    eval_id = "eval-" + time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
    report = EvalReport(
        eval_id=eval_id, workflow=default.spec.name if workflow is not None or len(workflows) == 1 else "policy",
        workflow_hash=default.spec.hash, specs={wf.spec.hash: wf.spec.name for wf in workflows}, env=env.name,
        split=split or "all", model=model, executor=executor.name, concurrency=concurrency, seed=seed,
        started_at=time.time(),
    )
    job = build_job(workflows, env, env_ref=env_ref, model=model, assignment=assignment)
    paths: dict[str, str] = {}

    def arrived(result: TaskResult) -> None:  # in this process, whichever executor ran the task
        if sink is not None:
            where = sink.write(result)
            if where is not None:
                result.trace_path = paths[result.task_id] = where
        if on_result is not None:
            on_result(result)

    if sink is not None:
        sink.open(report)
    started = time.perf_counter()
    token = cache_everything.set(True)
    try:
        with relaxed_gc(default.settings.eval_gc_threshold), bind(job, workflows, env):
            results = await executor.amap(job, tasks, concurrency=concurrency, on_result=arrived)
        report.results = [r if r.trace_path or r.task_id not in paths else
                          r.model_copy(update={"trace_path": paths[r.task_id]}) for r in results]
    except BaseException as exc:  # the sink still gets the report, marked as cut short
        report.aborted = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        cache_everything.reset(token)
        report.wall_s = time.perf_counter() - started
        if sink is not None:
            sink.close(report)
    log.info("eval.finished", **report.summary())
    return report


def evaluate(workflow: Workflow | None, env: Environment | str, **kwargs: Any) -> EvalReport:
    return run_sync(aevaluate(workflow, env, **kwargs))
