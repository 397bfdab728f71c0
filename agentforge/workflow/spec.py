"""The workflow as data: a frozen pydantic model whose content hash is its identity.

Node kinds form a discriminated union on ``kind``. Sequences are tuples so a spec cannot be
changed in place; a new version is made with :meth:`WorkflowSpec.evolve`, which records the parent
hash and the :class:`Change` that produced it.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from agentforge.workflow.types import ANY, FieldType, is_type_name, parse_type

START = "START"
END = "END"
RESERVED_IDS = frozenset({START, END, "__start__", "__end__"})
ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

TypeExpr = str | dict[str, Any]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Sampling(_Model):
    """Sampling parameters; any left unset falls back to the workflow defaults."""

    model: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, gt=0)
    seed: int | None = None


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


class Demo(_Model):
    """A few-shot example: values for the node's inputs and the outputs it should give."""

    inputs: dict[str, Any]
    outputs: dict[str, Any]


class _NodeBase(_Model):
    id: str = Field(pattern=ID_PATTERN)
    description: str | None = None
    inputs: tuple[str, ...] | dict[str, TypeExpr] = ()
    outputs: tuple[str, ...] | dict[str, TypeExpr] = ()
    protected: bool = Field(default=False, description="Optimizers must not remove or rewrite this node.")

    kind: ClassVar[str]

    def input_names(self) -> tuple[str, ...]:
        return tuple(self.inputs)

    def declared_input_types(self) -> dict[str, FieldType]:
        """Inputs whose type the node states; a bare name takes the type of whatever produces it."""
        if isinstance(self.inputs, dict):
            return {k: parse_type(v) for k, v in self.inputs.items()}
        return {}

    def output_types(self) -> dict[str, FieldType]:
        if isinstance(self.outputs, dict):
            return {k: parse_type(v) for k, v in self.outputs.items()}
        return {k: parse_type("str") for k in self.outputs}

    def components(self) -> dict[str, str]:
        """Named text components an optimizer may rewrite (``node_id.field`` -> text)."""
        return {}


class AgentNode(_NodeBase, Sampling):
    """One LLM call, or a ReAct loop when ``tools`` are allowed."""

    kind: Literal["agent"] = "agent"  # type: ignore[assignment]
    instruction: str = ""
    prompt: str | None = Field(default=None, description="Template with {field} variables.")
    demos: tuple[Demo, ...] = ()
    n: int = Field(default=1, ge=1, le=16, description="Samples to draw; the most common answer wins.")
    tools: tuple[str, ...] = ()
    max_steps: int = Field(default=6, ge=1, le=50)

    def components(self) -> dict[str, str]:
        out = {f"{self.id}.instruction": self.instruction}
        if self.prompt is not None:
            out[f"{self.id}.prompt"] = self.prompt
        return out


class ToolNode(_NodeBase):
    """Call one tool with arguments rendered from state."""

    kind: Literal["tool"] = "tool"  # type: ignore[assignment]
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)


class Route(_Model):
    to: str
    when: str | None = Field(default=None, description="A Python-like boolean expression over state.")
    label: str | None = Field(default=None, description="The name an LLM router chooses between.")
    description: str | None = None


class RouterChoice(Sampling):
    """Let an LLM pick the route label."""

    instruction: str = "Choose the best route for the input."
    prompt: str | None = None


class RouterNode(_NodeBase):
    """Branch on state expressions, or on an LLM's choice of label."""

    kind: Literal["router"] = "router"  # type: ignore[assignment]
    routes: tuple[Route, ...] = Field(min_length=1)
    default: str | None = None
    llm: RouterChoice | None = None
    max_iterations: int | None = Field(default=None, ge=1, description="Bound on visits, for loops.")
    on_limit: str | None = Field(default=None, description="Where to go once max_iterations is reached.")

    def components(self) -> dict[str, str]:
        return {f"{self.id}.instruction": self.llm.instruction} if self.llm else {}


class EnsembleMember(Sampling):
    instruction: str = ""
    prompt: str | None = None
    demos: tuple[Demo, ...] = ()


class EnsembleNode(_NodeBase):
    """Run one agent n times concurrently, then vote or let an LLM judge select."""

    kind: Literal["ensemble"] = "ensemble"  # type: ignore[assignment]
    member: EnsembleMember
    n: int = Field(default=3, ge=2, le=32)
    strategy: Literal["vote", "select"] = "vote"
    vote_on: str | None = None
    judge: RouterChoice | None = None

    def components(self) -> dict[str, str]:
        return {f"{self.id}.instruction": self.member.instruction}


class CodeNode(_NodeBase):
    """Run Python (written here, or generated into a state field) in a sandboxed subprocess."""

    kind: Literal["code"] = "code"  # type: ignore[assignment]
    source: str | None = None
    code_from: str | None = Field(default=None, description="State field holding the code to run.")
    timeout: float = Field(default=10.0, gt=0, le=600)
    memory_mb: int = Field(default=512, ge=32)
    on_error: Literal["fail", "continue"] = "fail"


class SubworkflowNode(_NodeBase):
    """Run another workflow file as one node; inputs and outputs bind by name."""

    kind: Literal["subworkflow"] = "subworkflow"  # type: ignore[assignment]
    workflow: str = Field(description="Path to the child YAML, relative to this file.")

    def output_types(self) -> dict[str, FieldType]:
        """Declared types; an output listed by name alone takes the child workflow's type for it.

        The child's outputs arrive already coerced to the child's types, so ``any`` here means "as
        the child gives it"; validation reads the child file to type these outputs statically.
        """
        if isinstance(self.outputs, dict):
            return {k: parse_type(v) for k, v in self.outputs.items()}
        return dict.fromkeys(self.outputs, ANY)


Node = Annotated[
    AgentNode | ToolNode | RouterNode | EnsembleNode | CodeNode | SubworkflowNode,
    Field(discriminator="kind"),
]
NODE_KINDS = ("agent", "tool", "router", "ensemble", "code", "subworkflow")


class Edge(_Model):
    """``from`` a list means a join: ``to`` runs once every listed node has finished."""

    source: str | tuple[str, ...] = Field(alias="from")
    target: str | tuple[str, ...] = Field(alias="to")

    def sources(self) -> tuple[str, ...]:
        return (self.source,) if isinstance(self.source, str) else self.source

    def targets(self) -> tuple[str, ...]:
        return (self.target,) if isinstance(self.target, str) else self.target


class Change(_Model):
    """Why a version differs from its parent (written by optimizers, read by the gate and reports)."""

    summary: str
    nodes: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    author: str = "human"


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
    nodes: tuple[Node, ...] = Field(min_length=1)
    edges: tuple[Edge, ...] = ()
    entry: str | tuple[str, ...] | None = None
    parent: str | None = Field(default=None, description="Content hash of the spec this one evolved from.")
    change: Change | None = None

    # Where the spec was loaded from, for error messages; not part of its identity.
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
        """The content hash: the spec's identity (computed once; the spec is frozen).

        Keys are not sorted: the order of a node's outputs is behaviour (``n`` samples and ensembles
        vote on the first one, and the model is asked for them in order), so it is identity too.
        """
        text = json.dumps(self.content(), separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> WorkflowSpec:
        copy = super().model_copy(update=update, deep=deep)
        for cached in _CACHED:  # a changed copy must not inherit cached identity or parsed fields
            copy.__dict__.pop(cached, None)
        return copy

    def evolve(self, change: Change, **updates: Any) -> WorkflowSpec:
        """A new version with ``updates`` applied, recording this spec as its parent."""
        data = self.model_dump(by_alias=True, exclude={"parent", "change"})
        data.update(updates)
        child = type(self).model_validate({**data, "parent": self.hash, "change": change.model_dump()})
        child._source = self._source
        return child

    # -- lookups -------------------------------------------------------------------------------
    def node(self, node_id: str) -> Node:
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

    def components(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for node in self.nodes:
            out.update(node.components())
        return out

    @property
    def source_file(self) -> str | None:
        return getattr(self._source, "file", None)


_CACHED = ("hash", "_parsed_inputs", "_parsed_input_types")
