"""``Workflow``: the public way to run a spec. Async first; each sync twin drops the ``a``.

A facade over three parts: the pure compile step (``runtime/compiler.py``), the ``Runner`` that runs a
compiled spec once (``runtime/runner.py``), and the ``RunStore`` of run folders (``runtime/store.py``).
A saved run gets an id, a workspace folder, a SQLite checkpoint (so a failed or interrupted run resumes
from its last finished step) and a ``Trace`` saved as JSON under ``runs/<run_id>/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentforge._sync import run_sync
from agentforge.config import Settings, get_settings
from agentforge.errors import AgentforgeError, ConfigError, InputError
from agentforge.llm.gateway import Gateway, shared_gateway
from agentforge.logs import get_logger
from agentforge.runtime.compiler import CompiledWorkflow
from agentforge.runtime.context import RunContext
from agentforge.runtime.runner import Runner, new_run_id
from agentforge.runtime.store import RunRecord, RunStore
from agentforge.runtime.trace import NodeTrace, Trace
from agentforge.workflow.loader import SourceMap, load_spec, spec_from_data
from agentforge.workflow.spec import WorkflowSpec
from agentforge.workflow.types import coerce, zero_value
from agentforge.workflow.validate import check

if TYPE_CHECKING:
    from agentforge.tools import ToolRegistry

__all__ = ["RunResult", "Workflow", "new_run_id", "run_sync"]

log = get_logger(__name__)


@dataclass
class RunResult:
    run_id: str
    outputs: dict[str, Any]
    trace: Trace
    trace_path: Path | None = None
    error: str | None = None
    exception: AgentforgeError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Workflow:
    """A validated spec bound to a gateway, a tool registry and a run store, ready to run."""

    def __init__(
        self,
        spec: WorkflowSpec,
        *,
        settings: Settings | None = None,
        gateway: Gateway | None = None,
        tools: Any = None,
        validate: bool = True,
        store: RunStore | None = None,
    ) -> None:
        from agentforge.tools import default_registry

        self.spec = spec
        self.settings = settings or (gateway.settings if gateway else get_settings())
        self.gateway = gateway or shared_gateway(self.settings)
        registry = tools or default_registry()
        self.tools = _with_refs(registry, spec.tools) if spec.tools else registry
        if validate:
            check(spec, settings=self.settings, tool_names=self.tools.names())
        self._store = store
        self._compiled: CompiledWorkflow | None = None
        self._runner: Runner | None = None
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
    def runner(self) -> Runner:
        if self._runner is None:
            self._runner = Runner(self.spec, self.compiled, self.gateway, self.tools)
        return self._runner

    @property
    def store(self) -> RunStore:
        """Where saved runs go: the one given, else ``settings.runs_dir`` (read when used, as settings may move)."""
        return self._store if self._store is not None else RunStore(self.settings.runs_dir)

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
    def _record(self, run_id: str, inputs: dict[str, Any], model: str | None, status: str,
                error: str | None = None) -> RunRecord:
        if self._spec_json is None:
            self._spec_json = self.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
        return RunRecord(
            run_id=run_id, workflow=self.spec.name, workflow_hash=self.spec.hash,
            workflow_file=str(Path(self.spec.source_file).resolve()) if self.spec.source_file else None,
            spec=self._spec_json, inputs=inputs, model=model, status=status, error=error,
        )

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
            self.store.save_record(self._record(run_id, values, model, "running"))
        return await self._invoke(values, trace, model=model, checkpoint=checkpoint and save, save=save)

    async def aexecute(self, inputs: dict[str, Any] | None = None, *, model: str | None = None,
                       run_id: str | None = None) -> RunResult:
        """Run once in memory (nothing saved, no checkpoint) and return a failure instead of raising it:
        ``error``/``exception`` set, the trace holding what ran before it. Bad inputs still raise."""
        values = self.prepare_inputs(inputs)
        trace = Trace(run_id=run_id or new_run_id(), workflow=self.spec.name, workflow_hash=self.spec.hash,
                      inputs=values)
        outcome = await self.runner.ainvoke(values, trace, model=model)
        error = outcome.error
        return RunResult(run_id=trace.run_id, outputs=outcome.outputs, trace=trace,
                         error=str(error) if error is not None else None, exception=error)

    async def _invoke(self, values: dict[str, Any] | None, trace: Trace, *, model: str | None,
                      checkpoint: bool, save: bool, resume: bool = False) -> RunResult:
        run_id = trace.run_id
        store = self.store
        try:
            outcome = await self.runner.ainvoke(
                values, trace, model=model, workspace=store.workspace(run_id) if save else None,
                checkpointer=store.checkpointer() if checkpoint else None, resume=resume)
        except (asyncio.CancelledError, KeyboardInterrupt):
            if save:  # the finished nodes are kept, so a resumed trace still shows them
                store.save_trace(trace)
                store.save_record(self._record(run_id, trace.inputs, model, "interrupted", "interrupted"))
            raise
        trace_path = None
        if save:
            trace_path = store.save_trace(trace)
            store.save_record(self._record(run_id, trace.inputs, model, trace.status, trace.error))
        if outcome.error is not None:
            raise outcome.error
        return RunResult(run_id=run_id, outputs=outcome.outputs, trace=trace, trace_path=trace_path)

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
                      tools: Any = None, store: RunStore | None = None) -> RunResult:
        """Continue a failed or interrupted run from its last checkpoint; finished nodes do not run again."""
        settings = settings or (gateway.settings if gateway else get_settings())
        store = store or RunStore(settings.runs_dir)
        record = store.load_record(run_id)
        source = SourceMap(file=record.workflow_file, data=record.spec)
        spec = spec_from_data(record.spec, source)
        wf = cls(spec, settings=settings, gateway=gateway, tools=tools, validate=False, store=store)
        previous = store.load_trace(run_id)
        if record.status == "succeeded" and previous is not None:
            return RunResult(run_id=run_id, outputs=previous.outputs, trace=previous,
                             trace_path=store.trace_path(run_id))
        trace = Trace(run_id=run_id, workflow=spec.name, workflow_hash=spec.hash, inputs=record.inputs, resumed=True)
        if previous is not None:  # none after a kill -9; the finished nodes come from the checkpoint anyway
            trace.latency_s = previous.latency_s
        # The recorded inputs restart a run stopped before its first checkpoint.
        return await wf._invoke(record.inputs, trace, model=record.model, checkpoint=True, save=True, resume=True)

    @classmethod
    def resume(cls, run_id: str, **kwargs: Any) -> RunResult:
        return run_sync(cls.aresume(run_id, **kwargs))

    # -- nesting -------------------------------------------------------------------------------
    async def execute_nested(self, values: dict[str, Any], *, parent: RunContext, record: NodeTrace) -> dict[str, Any]:
        """Run as a subworkflow inside a parent run: same gateway, workspace and model override."""
        inputs = self.prepare_inputs({k: v for k, v in values.items() if k in self.spec.inputs})
        return await self.runner.anested(inputs, parent=parent, record=record)


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
