"""Run a compiled workflow once: bind a ``RunContext``, invoke the graph (with a checkpointer when given),
fill the ``Trace``. A failed run is returned as an outcome carrying its error, never raised here, so each
caller decides: the ``Workflow`` facade raises, the evaluator records it as evidence. Nothing is written
to disk except a workspace a node asks for.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentforge.errors import AgentforgeError, BudgetExceeded, NodeError
from agentforge.logs import get_logger
from agentforge.runtime.compiler import TRACE_KEY, CompiledWorkflow
from agentforge.runtime.context import RunContext, current_run
from agentforge.runtime.trace import NodeTrace, Trace
from agentforge.workflow.spec import WorkflowSpec

if TYPE_CHECKING:
    from agentforge.llm.gateway import Gateway
    from agentforge.tools import ToolRegistry

log = get_logger(__name__)
_TMP = tempfile.gettempdir()


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


@dataclass
class RunOutcome:
    """What one invocation gave: the outputs (empty if it failed), the trace, and the error if any."""

    outputs: dict[str, Any]
    trace: Trace
    error: AgentforgeError | None = None


class Runner:
    """Runs one compiled spec against a gateway and a tool registry."""

    def __init__(self, spec: WorkflowSpec, compiled: CompiledWorkflow, gateway: Gateway,
                 tools: ToolRegistry) -> None:
        self.spec = spec
        self.compiled = compiled
        self.gateway = gateway
        self.tools = tools

    @property
    def spec_dir(self) -> Path | None:
        return Path(self.spec.source_file).parent if self.spec.source_file else None

    def context(self, trace: Trace, workspace: Path, model: str | None) -> RunContext:
        return RunContext(
            gateway=self.gateway, tools=self.tools, trace=trace, workspace_dir=workspace,
            defaults=self.spec.defaults, spec_dir=self.spec_dir, model_override=model, run_id=trace.run_id,
        )

    async def ainvoke(self, values: dict[str, Any] | None, trace: Trace, *, model: str | None = None,
                      workspace: Path | None = None, checkpointer: Any = None, resume: bool = False) -> RunOutcome:
        """Run from ``values`` (already prepared); with ``resume``, from the run's last checkpoint instead,
        or from ``values`` again when the run was stopped before its first checkpoint.

        ``workspace`` None gives a scratch folder, made only if a node asks for one and removed after.
        ``checkpointer`` is an async context manager giving a LangGraph saver (see ``RunStore``); steps are
        saved before the next one starts, so a node whose step was saved never runs again on resume.
        With ``resume`` the trace's nodes are replaced by the records saved with the checkpoint: each node
        whose writes were saved, once, however the previous attempt ended.
        Cancellation (Ctrl-C) marks the trace ``interrupted`` and propagates.
        """
        run_id = trace.run_id
        scratch = None
        if workspace is None:
            scratch = workspace = Path(os.path.join(_TMP, f"agentforge-{run_id}-{secrets.token_hex(4)}"))
        ctx = self.context(trace, workspace, model)
        config: dict[str, Any] = {
            "recursion_limit": self.compiled.recursion_limit,
            "max_concurrency": self.spec.defaults.concurrency,
            "configurable": {"thread_id": run_id},
        }
        started = time.perf_counter()
        token = current_run.set(ctx)
        error: AgentforgeError | None = None
        outputs: dict[str, Any] = {}
        try:
            # ``None`` resumes from the checkpoint; a new run starts from the inputs and state defaults.
            start = None if values is None else self.compiled.initial_state(values)
            if checkpointer is not None:
                saver = await _enter_whole(checkpointer)
                try:
                    if resume and (values is None or await saver.aget_tuple(config) is not None):
                        start = None
                    graph = self.compiled.graph(saver)
                    ctx.checkpointed = True
                    if resume:  # the checkpoint, not trace.json, knows which nodes finished (even after kill -9)
                        trace.nodes = await saved_records(graph, config)
                        log.info("run.resume", run_id=run_id, done_nodes=[n.node for n in trace.nodes])
                    try:
                        state = await graph.ainvoke(start, config, durability="sync")
                    except asyncio.CancelledError:
                        await _unfinish_unsaved(graph, config, trace)
                        raise
                finally:
                    await asyncio.shield(checkpointer.__aexit__(None, None, None))
            else:
                state = await self.compiled.graph().ainvoke(start, config)
            outputs = self.compiled.output_values(state)
        except AgentforgeError as exc:
            error = exc
        except Exception as exc:  # LangGraph's own errors, mapped here once
            error = map_graph_error(exc)
            error.__cause__ = exc
        except (asyncio.CancelledError, KeyboardInterrupt):
            trace.latency_s += time.perf_counter() - started
            trace.status, trace.error = "interrupted", "interrupted"
            log.info("run.interrupted", run_id=run_id, workflow=self.spec.name,
                     done_nodes=[n.node for n in trace.nodes if n.error is None])
            raise
        finally:
            current_run.reset(token)
            if scratch is not None and ctx.workspace_made:
                shutil.rmtree(scratch, ignore_errors=True)
        trace.latency_s += time.perf_counter() - started
        trace.outputs = outputs
        trace.status = "failed" if error else "succeeded"
        trace.error = str(error) if error else None
        if error is not None:
            error.fields.setdefault("run_id", run_id)
        log.info("run.finished", run_id=run_id, workflow=self.spec.name, status=trace.status,
                 latency_s=round(trace.latency_s, 3), llm_calls=trace.llm_calls)
        return RunOutcome(outputs=outputs, trace=trace, error=error)

    async def anested(self, inputs: dict[str, Any], *, parent: RunContext, record: NodeTrace) -> dict[str, Any]:
        """Run inside a parent run: same gateway, workspace and model override; node records go to ``record``."""
        trace = Trace(run_id=parent.run_id, workflow=self.spec.name, workflow_hash=self.spec.hash, inputs=inputs)
        ctx = self.context(trace, parent.workspace, parent.model_override)
        token = current_run.set(ctx)
        try:
            state = await self.compiled.graph().ainvoke(
                self.compiled.initial_state(inputs), {"recursion_limit": self.compiled.recursion_limit,
                                                      "max_concurrency": self.spec.defaults.concurrency})
        finally:
            current_run.reset(token)
            record.children.extend(trace.nodes)
        return self.compiled.output_values(state)


async def _enter_whole(manager: Any) -> Any:
    """Enter an async context manager even if cancelled meanwhile. A Ctrl-C that cut the SQLite saver's
    connect short would leave its thread posting to a closed loop ("Event loop is closed")."""
    entering = asyncio.ensure_future(manager.__aenter__())
    try:
        return await asyncio.shield(entering)
    except asyncio.CancelledError:
        await entering  # let the connection finish opening, so that it can be closed
        await manager.__aexit__(None, None, None)
        raise


async def saved_records(graph: Any, config: dict[str, Any]) -> list[NodeTrace]:
    """The ``NodeTrace`` of every node whose writes reached the run's checkpoint, oldest step first.

    Each step's checkpoint holds the records its nodes wrote (``TRACE_KEY`` is emptied every step); the
    latest checkpoint's pending writes add the nodes that finished in a step cut short (a kill, a sibling's
    failure). Those are never run again on resume, so each finished node is listed exactly once. Empty when
    the run has no checkpoint.
    """
    steps: list[list[dict[str, Any]]] = []
    latest = True
    async for snapshot in graph.aget_state_history(config):
        if latest:  # older checkpoints' pending writes are the next checkpoint's values: counted there
            latest = False
            steps.append([w for task in snapshot.tasks for w in (task.result or {}).get(TRACE_KEY) or ()])
        steps.append(list(snapshot.values.get(TRACE_KEY) or ()))
    records: list[NodeTrace] = []
    for step in reversed(steps):
        done = sorted((NodeTrace.model_validate(r) for r in step), key=lambda r: r.started_at + r.latency_s)
        records.extend(done)  # finish order within a step, as a live run appends them
    return records


async def _unfinish_unsaved(graph: Any, config: dict[str, Any], trace: Trace) -> None:
    """After a cancel, mark ``interrupted`` a node record whose writes did not reach the checkpoint (the
    cancel beat LangGraph's background save): that node runs again on resume, so it did not finish."""
    snapshot = await graph.aget_state(config)
    if snapshot.created_at is None:
        return
    since = datetime.fromisoformat(snapshot.created_at).timestamp()
    for name in {task.name for task in snapshot.tasks if task.result is None}:
        record = next((r for r in reversed(trace.nodes) if r.node == name), None)
        if record is not None and record.error is None and record.started_at >= since:
            record.error = "interrupted"


def map_graph_error(exc: Exception) -> AgentforgeError:
    name = type(exc).__name__
    if name == "GraphRecursionError":
        return BudgetExceeded(f"the run exceeded its step budget: {exc}")
    if name == "InvalidUpdateError":
        return NodeError(f"parallel nodes wrote the same state field in one step: {exc}. "
                         "Declare the field under 'state:' with a reducer (append, merge or sum).")
    return NodeError(f"the run failed with {name}: {exc}")
