"""``Workflow``: the public way to run a spec. Async first; each sync twin drops the ``a``.

A run gets an id, a workspace folder, a SQLite checkpoint (so a failed or interrupted run resumes
from its last finished step) and a ``Trace`` saved as JSON under ``runs/<run_id>/``.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agentforge.config import Settings, get_settings
from agentforge.errors import AgentforgeError, BudgetExceeded, ConfigError, InputError, NodeError, RunNotFound
from agentforge.llm.gateway import Gateway, shared_gateway
from agentforge.logs import get_logger
from agentforge.runtime.compiler import CompiledWorkflow
from agentforge.runtime.context import RunContext, current_run
from agentforge.runtime.trace import NodeTrace, Trace
from agentforge.workflow.loader import SourceMap, load_spec, spec_from_data
from agentforge.workflow.spec import WorkflowSpec
from agentforge.workflow.types import coerce, zero_value
from agentforge.workflow.validate import check

if TYPE_CHECKING:
    from agentforge.tools import ToolRegistry

log = get_logger(__name__)
_TMP = tempfile.gettempdir()
T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from synchronous code; refuse inside a running loop (use the async twin)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise RuntimeError("called a sync agentforge method inside a running event loop; await the 'a' twin instead")


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


@dataclass
class RunResult:
    run_id: str
    outputs: dict[str, Any]
    trace: Trace
    trace_path: Path | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Workflow:
    """A validated spec bound to a gateway and a tool registry, ready to run."""

    def __init__(
        self,
        spec: WorkflowSpec,
        *,
        settings: Settings | None = None,
        gateway: Gateway | None = None,
        tools: Any = None,
        validate: bool = True,
    ) -> None:
        from agentforge.tools import default_registry

        self.spec = spec
        self.settings = settings or (gateway.settings if gateway else get_settings())
        self.gateway = gateway or shared_gateway(self.settings)
        registry = tools or default_registry()
        self.tools = _with_refs(registry, spec.tools) if spec.tools else registry
        if validate:
            check(spec, settings=self.settings, tool_names=self.tools.names())
        self._compiled: CompiledWorkflow | None = None
        self._spec_json: dict[str, Any] | None = None

    @classmethod
    def from_yaml(cls, path: str | Path, **kwargs: Any) -> Workflow:
        return cls(load_spec(path), **kwargs)

    @property
    def compiled(self) -> CompiledWorkflow:
        if self._compiled is None:
            self._compiled = CompiledWorkflow(self.spec)
        return self._compiled

    @property
    def spec_dir(self) -> Path | None:
        return Path(self.spec.source_file).parent if self.spec.source_file else None

    # -- inputs --------------------------------------------------------------------------------
    def prepare_inputs(self, inputs: dict[str, Any] | None) -> dict[str, Any]:
        """Check names and types, fill defaults, coerce text (as from a command line) to the types."""
        inputs = dict(inputs or {})
        fields = self.spec.input_fields()
        problems: list[str] = []
        for name in inputs:
            if name not in fields:
                close = get_close_matches(name, list(fields), n=1)
                problems.append(f"unknown input '{name}'" + (f" (did you mean '{close[0]}'?)" if close else
                                                            f" (the workflow takes: {', '.join(fields) or 'none'})"))
        out: dict[str, Any] = {}
        for name, field in fields.items():
            ftype = self.spec.input_types()[name]
            if name not in inputs:
                if field.default is not None:
                    out[name] = field.default
                elif field.required:
                    problems.append(f"missing input '{name}' ({ftype})")
                else:  # optional with no default: the type's zero value ("", 0, [], ...; None for any)
                    try:
                        out[name] = zero_value(ftype)
                    except ValueError as exc:
                        problems.append(f"optional input '{name}' has no default and {ftype} has no zero value: "
                                        f"{exc}")
                continue
            try:
                out[name] = coerce(inputs[name], ftype)
            except ValueError as exc:
                problems.append(f"input '{name}' must be {ftype}: {exc}")
        if problems:
            raise InputError(f"bad inputs for workflow '{self.spec.name}': " + "; ".join(problems))
        return out

    # -- running -------------------------------------------------------------------------------
    def _context(self, trace: Trace, workspace: Path, model: str | None) -> RunContext:
        return RunContext(
            gateway=self.gateway, tools=self.tools, trace=trace, workspace_dir=workspace,
            defaults=self.spec.defaults, spec_dir=self.spec_dir, model_override=model, run_id=trace.run_id,
        )

    def _run_dir(self, run_id: str) -> Path:
        return self.settings.runs_dir / run_id

    def _spec_data(self) -> dict[str, Any]:
        if self._spec_json is None:
            self._spec_json = self.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
        return self._spec_json

    def _write_meta(self, run_id: str, inputs: dict[str, Any], model: str | None, status: str,
                    error: str | None = None) -> None:
        meta = {
            "run_id": run_id,
            "workflow": self.spec.name,
            "workflow_hash": self.spec.hash,
            "workflow_file": str(Path(self.spec.source_file).resolve()) if self.spec.source_file else None,
            "spec": self._spec_data(),
            "inputs": inputs,
            "model": model,
            "status": status,
            "error": error,
        }
        path = self._run_dir(run_id) / "run.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")

    async def arun(
        self,
        inputs: dict[str, Any] | None = None,
        *,
        model: str | None = None,
        run_id: str | None = None,
        checkpoint: bool = True,
        save: bool = True,
    ) -> RunResult:
        """Run once. Raises ``NodeError`` (carrying ``run_id``) if a node fails; the trace is saved first."""
        values = self.prepare_inputs(inputs)
        run_id = run_id or new_run_id()
        trace = Trace(run_id=run_id, workflow=self.spec.name, workflow_hash=self.spec.hash, inputs=values)
        if save:
            self._write_meta(run_id, values, model, "running")
        return await self._invoke(values, trace, model=model, checkpoint=checkpoint and save, save=save)

    async def _invoke(self, values: dict[str, Any] | None, trace: Trace, *, model: str | None,
                      checkpoint: bool, save: bool) -> RunResult:
        run_id = trace.run_id
        if save:
            scratch = None
            workspace = self._run_dir(run_id) / "workspace"
        else:  # an unsaved run gets a scratch folder, made only if a node asks for it
            scratch = Path(os.path.join(_TMP, f"agentforge-{run_id}-{secrets.token_hex(4)}"))
            workspace = scratch
        ctx = self._context(trace, workspace, model)
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
            if checkpoint:
                async with self._checkpointer() as saver:
                    state = await self.compiled.graph(saver).ainvoke(start, config)
            else:
                state = await self.compiled.graph().ainvoke(start, config)
            outputs = self.compiled.output_values(state)
        except AgentforgeError as exc:
            error = exc
        except Exception as exc:  # LangGraph's own errors, mapped here once
            error = _map_graph_error(exc)
            error.__cause__ = exc
        finally:
            current_run.reset(token)
            if scratch is not None and ctx.workspace_made:
                shutil.rmtree(scratch, ignore_errors=True)
        trace.latency_s += time.perf_counter() - started
        trace.outputs = outputs
        trace.status = "failed" if error else "succeeded"
        trace.error = str(error) if error else None
        trace_path = None
        if save:
            trace_path = trace.save(self._run_dir(run_id) / "trace.json")
            self._write_meta(run_id, trace.inputs, model, trace.status, trace.error)
        log.info("run.finished", run_id=run_id, workflow=self.spec.name, status=trace.status,
                 latency_s=round(trace.latency_s, 3), llm_calls=trace.llm_calls)
        if error is not None:
            error.fields.setdefault("run_id", run_id)
            error.trace = trace  # type: ignore[attr-defined]  # what ran before the failure, for reports
            raise error
        return RunResult(run_id=run_id, outputs=outputs, trace=trace, trace_path=trace_path)

    def _checkpointer(self) -> Any:
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        self.settings.runs_dir.mkdir(parents=True, exist_ok=True)
        return AsyncSqliteSaver.from_conn_string(str(self.settings.runs_dir / "checkpoints.sqlite"))

    def run(self, inputs: dict[str, Any] | None = None, **kwargs: Any) -> RunResult:
        return run_sync(self.arun(inputs, **kwargs))

    async def arun_batch(
        self,
        items: Sequence[dict[str, Any]],
        *,
        concurrency: int | None = None,
        model: str | None = None,
        save: bool = False,
    ) -> list[RunResult]:
        """Run many inputs concurrently under a limit. A failed item is returned with ``error`` set."""
        limit = asyncio.Semaphore(concurrency or self.spec.defaults.concurrency)

        async def one(item: dict[str, Any]) -> RunResult:
            async with limit:
                run_id = new_run_id()
                try:
                    return await self.arun(item, model=model, run_id=run_id, checkpoint=False, save=save)
                except AgentforgeError as exc:
                    trace = Trace(run_id=run_id, workflow=self.spec.name, workflow_hash=self.spec.hash,
                                  status="failed", error=str(exc), inputs=item)
                    return RunResult(run_id=run_id, outputs={}, trace=trace, error=str(exc))

        return list(await asyncio.gather(*(one(item) for item in items)))

    def run_batch(self, items: Sequence[dict[str, Any]], **kwargs: Any) -> list[RunResult]:
        return run_sync(self.arun_batch(items, **kwargs))

    # -- resuming ------------------------------------------------------------------------------
    @classmethod
    async def aresume(cls, run_id: str, *, settings: Settings | None = None, gateway: Gateway | None = None,
                      tools: Any = None) -> RunResult:
        """Continue a failed or interrupted run from its last checkpoint; finished nodes do not run again."""
        settings = settings or (gateway.settings if gateway else get_settings())
        run_dir = settings.runs_dir / run_id
        meta_path = run_dir / "run.json"
        if not meta_path.is_file():
            known = sorted(p.parent.name for p in settings.runs_dir.glob("*/run.json"))[-5:] \
                if settings.runs_dir.is_dir() else []
            raise RunNotFound(f"no run '{run_id}' under {settings.runs_dir}" +
                              (f" (recent: {', '.join(p for p in known)})" if known else ""), run_id=run_id)
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        source = SourceMap(file=meta.get("workflow_file"), data=meta["spec"])
        spec = spec_from_data(meta["spec"], source)
        wf = cls(spec, settings=settings, gateway=gateway, tools=tools, validate=False)
        trace_path = run_dir / "trace.json"
        previous = Trace.load(trace_path) if trace_path.is_file() else None
        if meta.get("status") == "succeeded" and previous is not None:
            return RunResult(run_id=run_id, outputs=previous.outputs, trace=previous, trace_path=trace_path)
        trace = Trace(run_id=run_id, workflow=spec.name, workflow_hash=spec.hash, inputs=meta.get("inputs", {}),
                      resumed=True)
        if previous is not None:
            trace.nodes = [n for n in previous.nodes if n.error is None]
            trace.latency_s = previous.latency_s
        log.info("run.resume", run_id=run_id, done_nodes=[n.node for n in trace.nodes])
        return await wf._invoke(None, trace, model=meta.get("model"), checkpoint=True, save=True)

    @classmethod
    def resume(cls, run_id: str, **kwargs: Any) -> RunResult:
        return run_sync(cls.aresume(run_id, **kwargs))

    # -- nesting -------------------------------------------------------------------------------
    async def execute_nested(self, values: dict[str, Any], *, parent: RunContext, record: NodeTrace) -> dict[str, Any]:
        """Run as a subworkflow inside a parent run: same gateway, workspace and model override."""
        inputs = self.prepare_inputs({k: v for k, v in values.items() if k in self.spec.inputs})
        trace = Trace(run_id=parent.run_id, workflow=self.spec.name, workflow_hash=self.spec.hash, inputs=inputs)
        ctx = self._context(trace, parent.workspace, parent.model_override)
        token = current_run.set(ctx)
        try:
            state = await self.compiled.graph().ainvoke(
                self.compiled.initial_state(inputs), {"recursion_limit": self.compiled.recursion_limit,
                         "max_concurrency": self.spec.defaults.concurrency})
        finally:
            current_run.reset(token)
            record.children.extend(trace.nodes)
        return self.compiled.output_values(state)


def _with_refs(registry: ToolRegistry, refs: dict[str, str]) -> ToolRegistry:
    """``registry`` plus the spec's custom tools. A name already registered is fine if it is the same
    function (a subworkflow declaring a tool its parent declares too); another function is a clash."""
    from agentforge.tools import ToolRegistry

    new = {name: ref for name, ref in refs.items() if name not in registry}
    for name in refs.keys() - new.keys():
        fn = registry.get(name).fn
        if f"{getattr(fn, '__module__', '')}:{getattr(fn, '__qualname__', '')}" == refs[name].strip():
            continue  # the very function the reference names: no need to import it again
        loaded = ToolRegistry().with_refs({name: refs[name]}).get(name)
        if loaded.fn is not fn:
            raise ConfigError(f"custom tool '{name}' ({refs[name]}) clashes with another tool named '{name}' "
                              "(a built-in, the parent workflow's, or one passed in): rename one of them",
                              ref=refs[name])
    return registry.with_refs(new) if new else registry


def _map_graph_error(exc: Exception) -> AgentforgeError:
    name = type(exc).__name__
    if name == "GraphRecursionError":
        return BudgetExceeded(f"the run exceeded its step budget: {exc}")
    if name == "InvalidUpdateError":
        return NodeError(f"parallel nodes wrote the same state field in one step: {exc}. "
                         "Declare the field under 'state:' with a reducer (append, merge or sum).")
    return NodeError(f"the run failed with {name}: {exc}")
