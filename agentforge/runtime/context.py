"""The per-run context: gateway, tools, trace, workspace, overrides; the runtime side of ``NodeRuntime``.

Node kinds (``workflow/nodes/``) never import the runtime; what they need while they run reaches
them through the methods here: traced LLM calls, tools, the workspace and child workflows.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentforge.runtime import generation
from agentforge.runtime.trace import NodeTrace, ToolCall, Trace
from agentforge.workflow.nodes.base import NodeRecord, Params, Sampling
from agentforge.workflow.spec import Defaults
from agentforge.workflow.types import FieldType

if TYPE_CHECKING:
    from agentforge.llm.base import LLMResponse, Message
    from agentforge.llm.gateway import Gateway
    from agentforge.tools.base import Tool, ToolRegistry

# Compiled children by file, reused while the file is unchanged (compiling costs milliseconds).
_CHILDREN: dict[Path, tuple[int, Any]] = {}


@dataclass
class RunContext:
    gateway: Gateway
    tools: ToolRegistry
    trace: Trace
    workspace_dir: Path
    defaults: Defaults
    spec_dir: Path | None = None
    model_override: str | None = None
    run_id: str = ""
    extra: dict[str, object] = field(default_factory=dict)
    checkpointed: bool = False  # node records then ride along with the state writes (compiler.TRACE_KEY)

    workspace_made: bool = False

    @property
    def workspace(self) -> Path:
        """The run's working folder, created on first use (most runs never need one)."""
        if not self.workspace_made:
            self.workspace_dir.mkdir(parents=True, exist_ok=True)
            self.workspace_made = True
        return self.workspace_dir

    # -- NodeRuntime ---------------------------------------------------------------------------
    def params(self, sampling: Sampling | None, *, temperature: float | None = None) -> Params:
        return generation.resolve_params(sampling, self, temperature=temperature)

    async def complete(self, record: NodeRecord, params: Params, messages: Sequence[Message], *,
                       schema: dict[str, Any] | None = None, n: int = 1, seed: int | None = None) -> LLMResponse:
        return await generation.call(self, _trace(record), params, messages, schema=schema, n=n, seed=seed)

    async def generate(self, record: NodeRecord, params: Params, messages: list[Message],
                       outputs: dict[str, FieldType], *, n: int = 1, seed: int | None = None) -> list[dict[str, Any]]:
        return await generation.generate(self, _trace(record), params, messages, outputs, n=n, seed=seed)

    def tool(self, name: str) -> Tool:
        return self.tools.get(name)

    def record_tool_call(self, record: NodeRecord, *, tool: str, args: dict[str, Any], result: str,
                         error: bool = False, latency_s: float = 0.0) -> None:
        _trace(record).tool_calls.append(ToolCall(tool=tool, args=args, result=result, error=error,
                                                  latency_s=latency_s))

    def child_record(self, record: NodeRecord, name: str, kind: str) -> NodeRecord:
        parent = _trace(record)
        child = NodeTrace(node=name, kind=kind, started_at=parent.started_at)
        parent.children.append(child)
        return child

    async def run_child(self, workflow: str, values: dict[str, Any], record: NodeRecord) -> dict[str, Any]:
        from agentforge.runtime.compiler import CompiledWorkflow
        from agentforge.runtime.workflow import Workflow
        from agentforge.workflow.loader import load_spec

        path = ((self.spec_dir or Path.cwd()) / workflow).resolve()
        mtime = path.stat().st_mtime_ns
        cached = _CHILDREN.get(path)
        if cached is None or cached[0] != mtime:
            cached = _CHILDREN[path] = (mtime, CompiledWorkflow(load_spec(path)))
        compiled = cached[1]
        child = Workflow(compiled.spec, gateway=self.gateway, tools=self.tools, validate=False)
        child._compiled = compiled
        return await child.execute_nested(values, parent=self, record=_trace(record))


def _trace(record: NodeRecord) -> NodeTrace:
    assert isinstance(record, NodeTrace)  # the runtime hands kinds its own records
    return record


current_run: ContextVar[RunContext] = ContextVar("agentforge_run")

