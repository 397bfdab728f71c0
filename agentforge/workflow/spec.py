"""The workflow as data: a frozen pydantic model whose content hash is its identity.

Node kinds form a discriminated union on ``kind``, derived from the registry in
``workflow/nodes/``. Sequences are tuples so a spec cannot be changed in place; a new version is made
with :meth:`WorkflowSpec.apply`, which validates it and records the parent hash and the
:class:`Change` that produced it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator
from pydantic.fields import FieldInfo

from agentforge.workflow.edits import Candidate, Change, Edit
from agentforge.workflow.nodes import (
    AgentNode,
    CodeNode,
    EnsembleMember,
    EnsembleNode,
    Route,
    RouterChoice,
    RouterNode,
    SubworkflowNode,
    ToolNode,
)
from agentforge.workflow.nodes.base import (
    END,
    ID_PATTERN,
    RESERVED_IDS,
    START,
    Component,
    Demo,
    Edge,
    FrozenModel,
    NodeBase,
    Sampling,
    TypeExpr,
    node_kinds,
    node_union,
    on_change,
)
from agentforge.workflow.types import FieldType, is_type_name, parse_type

__all__ = [
    "END",
    "ID_PATTERN",
    "RESERVED_IDS",
    "START",
    "AgentNode",
    "Candidate",
    "Change",
    "CodeNode",
    "Component",
    "Defaults",
    "Demo",
    "Edge",
    "Edit",
    "EnsembleMember",
    "EnsembleNode",
    "InputField",
    "NodeBase",
    "Route",
    "RouterChoice",
    "RouterNode",
    "Sampling",
    "StateField",
    "SubworkflowNode",
    "ToolNode",
    "TypeExpr",
    "WorkflowSpec",
]


_Model = FrozenModel


class Defaults(Sampling):
    model: str | None = "local"
    temperature: float | None = 0.0
    max_tokens: int | None = 512
    concurrency: int = Field(default=4, gt=0, description="Parallel branches and batch items at once.")


class StateField(_Model):
    """An internal state field, with an optional reducer for values written by parallel branches."""

    type: TypeExpr = "str"
    reducer: Literal["replace", "append", "merge", "sum"] = "replace"
    default: Any = None
    description: str | None = None


class InputField(_Model):
    type: TypeExpr = "str"
    default: Any = None
    required: bool = True
    description: str | None = None


class WorkflowSpec(_Model):
    version: Literal[1] = 1
    kind: Literal["workflow"] = "workflow"
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str | None = None
    inputs: dict[str, TypeExpr | InputField] = Field(default_factory=dict)
    outputs: dict[str, TypeExpr] = Field(default_factory=dict)
    state: dict[str, StateField] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    tools: dict[str, str] = Field(default_factory=dict, description="Custom tools: name -> 'module:attr'.")
    nodes: tuple[node_union(), ...] = Field(min_length=1)  # type: ignore[valid-type]
    edges: tuple[Edge, ...] = ()
    entry: str | tuple[str, ...] | None = None
    parent: str | None = Field(default=None, description="Content hash of the spec this one evolved from.")
    change: Change | None = None

    # Where the spec was loaded from, for error messages and child paths; not part of its identity.
    _source: Any = PrivateAttr(default=None)

    @field_validator("inputs", mode="before")
    @classmethod
    def _input_fields(cls, value: Any) -> Any:
        """``{type: float, default: 2}`` is an input field; ``{type: string, enum: [...]}`` a JSON schema."""
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for name, item in value.items():
            if isinstance(item, dict) and (
                "default" in item or "required" in item
                or (isinstance(item.get("type"), str) and is_type_name(item["type"]))
                or isinstance(item.get("type"), dict)
            ):
                out[name] = InputField.model_validate(item)
            else:
                out[name] = item
        return out

    @field_validator("tools")
    @classmethod
    def _tool_refs(cls, value: dict[str, str]) -> dict[str, str]:
        for name, ref in value.items():
            if ":" not in ref:
                raise ValueError(f"tool '{name}': reference {ref!r} must look like 'package.module:function'")
        return value

    # -- identity and lineage ------------------------------------------------------------------
    def content(self) -> dict[str, Any]:
        """The canonical content: everything but lineage, as plain JSON data.

        Model fields come out in their declared order whatever the YAML's key order; mappings the
        workflow writes (outputs, inputs, args, schemas, ...) keep the order they were written in.
        """
        return self.model_dump(mode="json", by_alias=True, exclude={"parent", "change"}, exclude_none=True)

    @cached_property
    def hash(self) -> str:
        """The identity: a hash of the content and of every subworkflow's identity (computed once).

        Keys are not sorted: the order of a node's outputs is behaviour (``n`` samples and ensembles
        vote on the first one, and the model is asked for them in order), so it is identity too.
        A subworkflow node names a file; the child's own hash is folded in, so editing the child file
        changes the parent's hash. Custom tool references are part of the content (``tools:``).
        Model aliases resolve through settings, which are not part of the spec: ``identity()``
        records them beside the hash.
        """
        text = json.dumps(self.content(), separators=(",", ":"))
        children = self.child_hashes()
        if children:
            text += json.dumps(children, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def child_hashes(self) -> dict[str, str]:
        """The hash of each subworkflow node's child spec (``missing:<path>`` if it cannot be read)."""
        out: dict[str, str] = {}
        for node in self.nodes:
            for i, workflow in enumerate(node.child_workflows()):
                out[node.id if i == 0 else f"{node.id}#{i}"] = _child_hash(self, workflow)
        return out

    def identity(self, settings: Any = None) -> dict[str, Any]:
        """What the spec's behaviour depends on: the hash, and beside it what settings resolve.

        The hash covers the content (custom tool references included) and every subworkflow's hash.
        Model aliases are defined in ``agentforge.yaml``, outside the spec, so each alias the spec
        uses is recorded here as settings resolve it (model string, api_base, provider params);
        a name that is not an alias (a litellm ``provider/model`` string) maps to ``None``.
        """
        from agentforge.config import get_settings

        aliases = (settings or get_settings()).aliases()
        models: dict[str, Any] = {}
        for name in sorted(self.models_used()):
            alias = aliases.get(name)
            models[name] = alias.model_dump(mode="json", include={"model", "api_base", "params"}) if alias else None
        return {"hash": self.hash, "tools": dict(self.tools), "subworkflows": self.child_hashes(), "models": models}

    def models_used(self) -> set[str]:
        """Every model name the spec names (defaults and nodes), aliases and provider strings alike."""
        names = {self.defaults.model} if self.defaults.model else set()
        for c in self.components():
            if c.kind == "sampling" and c.name.endswith(".model") and c.value:
                names.add(c.value)
        return names

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> WorkflowSpec:
        """A copy with ``update`` applied, validated like any new spec (``deep`` is moot: specs are frozen)."""
        data = self.model_dump(by_alias=True, round_trip=True)
        for key, value in (update or {}).items():
            alias = type(self).model_fields[key].alias if key in type(self).model_fields else None
            data[alias or key] = value
        copy = type(self).model_validate(data)
        copy._source = self._source
        return copy

    def apply(self, edits: Sequence[Edit], change: Change | None = None, *, tool_names: Iterable[str] | None = None,
              settings: Any = None) -> WorkflowSpec:
        """A new version: this spec with ``edits`` applied, fully validated, recording this spec as its parent.

        The ``change`` stored on the result holds the edits as applied (each with its before and
        after) and the RFC 6902 patch from this spec to the result. ``tool_names`` (the tool registry's
        names) enables the unknown-tool check; without it tools are not checked. A bad edit, or a
        result that fails validation, raises ``SpecError`` naming the edit.
        """
        from agentforge.workflow.edits import apply_edits

        return apply_edits(self, edits, change, tool_names=tool_names, settings=settings)

    # -- lookups -------------------------------------------------------------------------------
    def node(self, node_id: str) -> Any:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def node_ids(self) -> list[str]:
        return [n.id for n in self.nodes]

    def entries(self) -> tuple[str, ...]:
        if self.entry is None:
            return (self.nodes[0].id,)
        return (self.entry,) if isinstance(self.entry, str) else self.entry

    def input_fields(self) -> dict[str, InputField]:
        return self._parsed_inputs

    def input_types(self) -> dict[str, FieldType]:
        return self._parsed_input_types

    # Parsed once per (frozen) spec: runs read them on every call.
    @cached_property
    def _parsed_inputs(self) -> dict[str, InputField]:
        return {name: value if isinstance(value, InputField) else InputField(type=value)
                for name, value in self.inputs.items()}

    @cached_property
    def _parsed_input_types(self) -> dict[str, FieldType]:
        return {k: parse_type(v.type) for k, v in self._parsed_inputs.items()}

    def output_types(self) -> dict[str, FieldType]:
        return {k: parse_type(v) for k, v in self.outputs.items()}

    def components(self) -> tuple[Component, ...]:
        """Every editable part of every node, each with its value, kind and whether its node is protected."""
        return tuple(c for node in self.nodes for c in node.components())

    @property
    def source_file(self) -> str | None:
        return getattr(self._source, "file", None)

    @property
    def base_dir(self) -> Path:
        """The folder subworkflow paths are relative to."""
        return Path(self.source_file).parent if self.source_file else Path.cwd()


# Files whose hash is being computed, so a file that includes itself hashes as a cycle, not forever.
_HASHING: ContextVar[frozenset[Path]] = ContextVar("agentforge_hashing", default=frozenset())


def _child_hash(spec: WorkflowSpec, workflow: str) -> str:
    from agentforge.errors import SpecError
    from agentforge.workflow.loader import load_spec

    path = (spec.base_dir / workflow).resolve()
    outer = _HASHING.get()
    if path in outer:
        return f"cycle:{workflow}"
    token = _HASHING.set(outer | {path, *([Path(spec.source_file).resolve()] if spec.source_file else [])})
    try:
        return load_spec(path).hash
    except SpecError:
        return f"missing:{workflow}"
    finally:
        _HASHING.reset(token)


def _rebuild() -> None:
    """Re-derive the node union after a kind is registered or removed."""
    field = WorkflowSpec.__pydantic_fields__["nodes"]
    WorkflowSpec.__pydantic_fields__["nodes"] = FieldInfo.from_annotated_attribute(
        tuple[node_union(), ...], Field(min_length=1, description=field.description))  # type: ignore[misc]
    WorkflowSpec.model_rebuild(force=True)
    Candidate.model_rebuild(force=True)


on_change(_rebuild)
Candidate.model_rebuild(_types_namespace={"WorkflowSpec": WorkflowSpec})


def __getattr__(name: str) -> Any:
    # The union and the list of kinds follow the registry, so they are read when asked for.
    if name == "NODE_KINDS":
        return node_kinds()
    if name == "Node":
        return node_union()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
