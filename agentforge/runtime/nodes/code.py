"""The ``code`` node: run written or generated Python in the sandbox and parse what it prints."""

from __future__ import annotations

import json
from typing import Any

from agentforge.errors import NodeError
from agentforge.runtime.context import RunContext
from agentforge.runtime.trace import NodeTrace
from agentforge.workflow.spec import CodeNode
from agentforge.workflow.types import FieldType, coerce, zero_value


def parse_stdout(stdout: str, outputs: dict[str, FieldType]) -> dict[str, Any]:
    """One output takes all of stdout; several take the last line, which must be a JSON object.

    With no outputs the code runs for its effects (files, checks that fail by exiting non-zero)
    and what it prints is not parsed.
    """
    if not outputs:
        return {}
    if len(outputs) == 1:
        name, ftype = next(iter(outputs.items()))
        text = stdout.strip()
        if ftype.base != "str" and "\n" in text:
            text = text.splitlines()[-1].strip()  # the result is what was printed last
        return {name: coerce(text, ftype)}
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    if not lines:
        raise ValueError("the code printed nothing; print a JSON object with the outputs on the last line")
    data = json.loads(lines[-1])
    if not isinstance(data, dict):
        raise ValueError("the last line printed must be a JSON object with the outputs")
    return {name: coerce(data[name], ftype) for name, ftype in outputs.items()}


async def execute(node: CodeNode, values: dict[str, Any], ctx: RunContext, record: NodeTrace) -> dict[str, Any]:
    from agentforge.safety.sandbox import arun_python, extract_code

    code = node.source if node.source is not None else extract_code(str(values[node.code_from]))
    inputs = {k: v for k, v in values.items() if k != node.code_from}
    result = await arun_python(code, inputs=inputs, timeout=node.timeout, memory_mb=node.memory_mb,
                               workdir=ctx.workspace)
    record.notes.append(f"exit={result.returncode} timed_out={result.timed_out} {result.duration_s:.2f}s")
    outputs = node.output_types()
    if not outputs and result.stdout.strip():
        record.notes.append(f"stdout: {result.stdout.strip()[-300:]}")
    problem: str | None = None
    if not result.ok:
        problem = "timed out" if result.timed_out else f"exited with {result.returncode}: {result.stderr[-800:]}"
    else:
        try:
            return parse_stdout(result.stdout, outputs)
        except (ValueError, KeyError) as exc:
            problem = f"output not usable: {exc}; stdout was {result.stdout[-300:]!r}"
    if node.on_error == "continue":
        record.error = problem
        try:
            return {name: zero_value(t) for name, t in outputs.items()}
        except ValueError as exc:  # validation reports such outputs; this guards unvalidated specs
            raise NodeError(f"code node '{node.id}' {problem}; on_error: continue found no zero value: {exc}",
                            node=node.id) from None
    raise NodeError(f"code node '{node.id}' {problem}", node=node.id)
