"""The ``code`` kind: run written or generated Python in the sandbox and parse what it prints."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from agentforge.errors import NodeError
from agentforge.workflow.nodes.base import CheckContext, Component, NodeBase, NodeRecord, NodeRuntime, register
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


@register
class CodeNode(NodeBase):
    """Run Python (written here, or generated into a state field) in a sandboxed subprocess."""

    kind: Literal["code"] = "code"  # type: ignore[assignment]
    source: str | None = None
    code_from: str | None = Field(default=None, description="State field holding the code to run.")
    timeout: float = Field(default=10.0, gt=0, le=600)
    memory_mb: int = Field(default=512, ge=32)
    on_error: Literal["fail", "continue"] = "fail"

    shape = ("[(", ")]")
    color = "#f8d7da"

    def check(self, ctx: CheckContext) -> None:
        if (self.source is None) == (self.code_from is None):
            ctx.add("a code node needs exactly one of 'source' or 'code_from'", node=self.id,
                    field="source", code="code_source")
        elif self.code_from is not None and self.code_from not in self.input_names():
            ctx.add(f"code_from '{self.code_from}' is not one of the node's inputs", node=self.id,
                    path=("code_from",), field="code_from", hint=f"add '{self.code_from}' to inputs",
                    code="unbound_variable")
        if self.on_error == "continue":
            for name, ftype in ctx.output_types(self.id).items():
                ctx.check_zero(ftype, node=self.id, path=("outputs", name), field=f"outputs.{name}",
                               what=f"output '{name}' (on_error: continue)",
                               hint="add the zero value to the enum, or use on_error: fail")

    def components(self) -> tuple[Component, ...]:
        return (self.component("source", self.source, "code"),) if self.source is not None else ()

    async def execute(self, values: dict[str, Any], rt: NodeRuntime, record: NodeRecord) -> dict[str, Any]:
        from agentforge.sandbox import arun_python, extract_code

        code = self.source if self.source is not None else extract_code(str(values[self.code_from]))
        inputs = {k: v for k, v in values.items() if k != self.code_from}
        result = await arun_python(code, inputs=inputs, timeout=self.timeout, memory_mb=self.memory_mb,
                                   workdir=rt.workspace)
        record.notes.append(f"exit={result.returncode} timed_out={result.timed_out} {result.duration_s:.2f}s")
        outputs = self.output_types()
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
        if self.on_error == "continue":
            record.error = problem
            try:
                return {name: zero_value(t) for name, t in outputs.items()}
            except ValueError as exc:  # validation reports such outputs; this guards unvalidated specs
                raise NodeError(f"code node '{self.id}' {problem}; on_error: continue found no zero value: {exc}",
                                node=self.id) from None
        raise NodeError(f"code node '{self.id}' {problem}", node=self.id)
