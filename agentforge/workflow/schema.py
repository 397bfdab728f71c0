"""The JSON Schema of the workflow format, with every ``$ref`` inlined (editors prefer it flat)."""

from __future__ import annotations

from typing import Any


def _inline(node: Any, defs: dict[str, Any], depth: int = 0) -> Any:
    if depth > 50:
        raise ValueError("schema nests too deeply to inline")
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            extra = {k: v for k, v in node.items() if k != "$ref"}
            return {**_inline(defs[name], defs, depth + 1), **_inline(extra, defs, depth + 1)}
        return {k: _inline(v, defs, depth + 1) for k, v in node.items() if k != "discriminator"}
    if isinstance(node, list):
        return [_inline(v, defs, depth + 1) for v in node]
    return node


def workflow_json_schema() -> dict[str, Any]:
    from agentforge.workflow.spec import WorkflowSpec

    raw = WorkflowSpec.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    schema = _inline(raw, defs)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "agentforge workflow"
    return schema
