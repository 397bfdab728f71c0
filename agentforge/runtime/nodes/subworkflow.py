"""The ``subworkflow`` node: run another workflow file as one step; inputs and outputs bind by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentforge.runtime.context import RunContext
from agentforge.runtime.trace import NodeTrace
from agentforge.workflow.spec import SubworkflowNode

# Compiled children by file, reused while the file is unchanged (compiling costs milliseconds).
_CHILDREN: dict[Path, tuple[int, Any]] = {}


async def execute(node: SubworkflowNode, values: dict[str, Any], ctx: RunContext,
                  record: NodeTrace) -> dict[str, Any]:
    from agentforge.runtime.compiler import CompiledWorkflow
    from agentforge.runtime.workflow import Workflow
    from agentforge.workflow.loader import load_spec

    path = ((ctx.spec_dir or Path.cwd()) / node.workflow).resolve()
    mtime = path.stat().st_mtime_ns
    cached = _CHILDREN.get(path)
    if cached is None or cached[0] != mtime:
        spec = load_spec(path)
        cached = _CHILDREN[path] = (mtime, CompiledWorkflow(spec))
    compiled = cached[1]
    child = Workflow(compiled.spec, gateway=ctx.gateway, tools=ctx.tools, validate=False)
    child._compiled = compiled
    result = await child.execute_nested(values, parent=ctx, record=record)
    return {name: result[name] for name in node.outputs}
