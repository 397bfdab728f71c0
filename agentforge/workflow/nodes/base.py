"""The node-kind contract: the node base model, the services a kind uses, and the kind registry.

A kind is one pydantic class in one module. The class is the kind's params model and also says how
the kind is checked (``check``), which of its texts and settings an optimizer may edit
(``components``), how it runs (``execute``, or ``route`` for a kind that picks the next node) and how
it is drawn (``shape``, ``color``). ``register`` adds a kind; the spec's node union, the loader's list
of kinds and the JSON Schema all follow the registry.

Kinds live in the workflow layer and never import the runtime: what a kind needs while it runs
(LLM calls with tracing, tools, the workspace, a child workflow) reaches it through ``NodeRuntime``,
which the runtime implements; what it needs while it is checked reaches it through ``CheckContext``,
which ``workflow/validate.py`` implements.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field

from agentforge._yaml import YamlPath
from agentforge.workflow.types import FieldType, parse_type

if TYPE_CHECKING:
    from agentforge.llm.base import LLMResponse, Message
    from agentforge.tools.base import Tool
    from agentforge.workflow.spec import WorkflowSpec

START = "START"
END = "END"
RESERVED_IDS = frozenset({START, END, "__start__", "__end__"})
ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

TypeExpr = str | dict[str, Any]


class FrozenModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Edge(FrozenModel):
    """``from`` a list means a join: ``to`` runs once every listed node has finished."""

    source: str | tuple[str, ...] = Field(alias="from")
    target: str | tuple[str, ...] = Field(alias="to")

    def sources(self) -> tuple[str, ...]:
        return (self.source,) if isinstance(self.source, str) else self.source

    def targets(self) -> tuple[str, ...]:
        return (self.target,) if isinstance(self.target, str) else self.target


class Sampling(FrozenModel):
    """Sampling parameters; any left unset falls back to the workflow defaults."""

    model: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, gt=0)
    seed: int | None = None


SAMPLING_PARAMS = ("model", "temperature", "top_p", "max_tokens", "seed")


class Demo(FrozenModel):
    """A few-shot example: values for the node's inputs and the outputs it should give."""

    inputs: dict[str, Any]
    outputs: dict[str, Any]


ComponentKind = Literal["text", "demos", "sampling", "tools", "label", "code"]


class Component(FrozenModel):
    """One named, editable part of a spec: ``name`` is ``node_id.path`` (``ask.instruction``, ``r.routes.0.label``)."""

    name: str
    value: Any = None
    kind: ComponentKind
    node: str
    protected: bool = False

    @property
    def path(self) -> tuple[str | int, ...]:
        """Where the value sits inside the node's data (``("routes", 0, "label")``)."""
        return tuple(int(p) if p.isdigit() else p for p in self.name.split(".")[1:])


@dataclass(frozen=True)
class Params:
    """Sampling after node settings, workflow defaults and run overrides are merged."""

    model: str
    temperature: float
    top_p: float | None
    max_tokens: int | None
    seed: int | None


@dataclass(frozen=True)
class Branch:
    """One exit of a kind that picks the next node: its target, a label to draw, and where it is written."""

    target: str
    label: str
    path: YamlPath
    field: str


class NodeRecord(Protocol):
    """The part of a node's trace record a kind writes to."""

    node: str
    outputs: dict[str, Any]
    notes: list[str]
    error: str | None


class NodeRuntime(Protocol):
    """What a running kind may use; implemented by the runtime's run context."""

    @property
    def workspace(self) -> Path: ...

    def params(self, sampling: Sampling | None, *, temperature: float | None = None) -> Params:
        """The node's sampling merged with the workflow defaults and the run's overrides."""
        ...

    async def complete(self, record: NodeRecord, params: Params, messages: Sequence[Message], *,
                       schema: dict[str, Any] | None = None, n: int = 1, seed: int | None = None) -> LLMResponse:
        """One traced model call."""
        ...

    async def generate(self, record: NodeRecord, params: Params, messages: list[Message],
                       outputs: dict[str, FieldType], *, n: int = 1, seed: int | None = None) -> list[dict[str, Any]]:
        """``n`` typed samples of the outputs; an unparsable reply is repaired once."""
        ...

    def tool(self, name: str) -> Tool: ...

    def record_tool_call(self, record: NodeRecord, *, tool: str, args: dict[str, Any], result: str,
                         error: bool = False, latency_s: float = 0.0) -> None: ...

    def child_record(self, record: NodeRecord, name: str, kind: str) -> NodeRecord:
        """A nested record (an ensemble member) shown under ``record`` in the trace."""
        ...

    async def run_child(self, workflow: str, values: dict[str, Any], record: NodeRecord) -> dict[str, Any]:
        """Run the workflow file ``workflow`` (relative to the parent's file) with ``values``."""
        ...


class CheckContext(Protocol):
    """What a kind's static checks may use; implemented by ``workflow/validate.py``."""

    def add(self, message: str, *, node: str | None = None, path: YamlPath = (), field: str | None = None,
            hint: str | None = None, code: str = "invalid") -> None: ...

    def output_types(self, node_id: str) -> dict[str, FieldType]:
        """The node's declared outputs, parsed (a bad type is already reported)."""
        ...

    def check_model(self, model: str | None, *, node: str, path: YamlPath, field: str) -> None: ...

    def check_tool(self, name: str, *, node: str, path: YamlPath) -> None: ...

    def check_template(self, text: str, *, node: str, path: YamlPath, field: str, inputs: set[str]) -> None: ...

    def check_zero(self, ftype: FieldType, *, node: str | None, path: YamlPath, field: str, what: str,
                   hint: str) -> None: ...

    def child(self, node: str, workflow: str) -> WorkflowSpec | None:
        """Load and check a child workflow file; ``None`` (with the problem reported) if it cannot be used."""
        ...


def suggest(name: str, options: Iterable[str]) -> str | None:
    close = get_close_matches(name, list(options), n=1)
    return f"did you mean '{close[0]}'?" if close else None


class NodeBase(FrozenModel):
    """Fields every node has, and the default behaviour of a kind (override what differs)."""

    id: str = Field(pattern=ID_PATTERN)
    description: str | None = None
    inputs: tuple[str, ...] | dict[str, TypeExpr] = ()
    outputs: tuple[str, ...] | dict[str, TypeExpr] = ()
    protected: bool = Field(default=False, description="Optimizers must not remove or rewrite this node.")

    kind: ClassVar[str]
    shape: ClassVar[tuple[str, str]] = ("[", "]")  # Mermaid brackets
    color: ClassVar[str] = "#ffffff"

    # -- ports ---------------------------------------------------------------------------------
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

    # -- static checks -------------------------------------------------------------------------
    def check(self, ctx: CheckContext) -> None:
        """Report what is wrong with this node on its own (graph-level checks are the validator's)."""

    def static_output_types(self, ctx: CheckContext, declared: dict[str, FieldType]) -> dict[str, FieldType]:
        """The output types other nodes see (a subworkflow reads its child's)."""
        return declared

    def static_input_type(self, ctx: CheckContext, name: str) -> FieldType | None:
        """The type an untyped input must have, if the kind knows it."""
        return None

    # -- components ----------------------------------------------------------------------------
    def components(self) -> tuple[Component, ...]:
        """Named parts an optimizer may edit, each with its current value."""
        return ()

    def component(self, path: str, value: Any, kind: ComponentKind) -> Component:
        return Component(name=f"{self.id}.{path}", value=value, kind=kind, node=self.id, protected=self.protected)

    def sampling_components(self, owner: Sampling, prefix: str = "") -> tuple[Component, ...]:
        return tuple(self.component(prefix + p, getattr(owner, p), "sampling") for p in SAMPLING_PARAMS)

    # -- running -------------------------------------------------------------------------------
    def branches(self) -> tuple[Branch, ...]:
        """The exits of a kind that picks the next node itself; empty for a kind followed by edges."""
        return ()

    def child_workflows(self) -> tuple[str, ...]:
        """Workflow files this node runs (relative to the spec's file); their hashes are part of the spec's."""
        return ()

    def loop_bound(self) -> int | None:
        """How many visits a loop through this node may make, if the kind bounds loops."""
        return None

    async def execute(self, values: dict[str, Any], rt: NodeRuntime, record: NodeRecord) -> dict[str, Any]:
        """Run once on the node's input values; return its outputs."""
        raise NotImplementedError(f"node kind '{self.kind}' does not run")

    async def route(self, values: dict[str, Any], rt: NodeRuntime, record: NodeRecord, visits: int) -> str:
        """For a kind with ``branches``: the id of the next node (``visits`` counts this visit)."""
        raise NotImplementedError(f"node kind '{self.kind}' does not route")


# -- the registry ------------------------------------------------------------------------------
N = TypeVar("N", bound=type[NodeBase])
_KINDS: dict[str, type[NodeBase]] = {}
_LISTENERS: list[Callable[[], None]] = []


def register(cls: N) -> N:
    """Add a kind (usable as a class decorator). Its ``kind`` field must be a ``Literal`` of its name."""
    name = cls.model_fields["kind"].default
    if not isinstance(name, str):
        raise TypeError(f"{cls.__name__} needs a field `kind: Literal['<name>'] = '<name>'`")
    known = _KINDS.get(name)
    if known is not None and known is not cls:
        raise ValueError(f"node kind '{name}' is already registered by {known.__module__}.{known.__name__}")
    _KINDS[name] = cls
    _changed()
    return cls


def unregister(name: str) -> None:
    if _KINDS.pop(name, None) is not None:
        _changed()


def on_change(listener: Callable[[], None]) -> None:
    """Call ``listener`` whenever a kind is added or removed (models embedding the union rebuild)."""
    _LISTENERS.append(listener)


def _changed() -> None:
    for listener in _LISTENERS:
        listener()


def node_kinds() -> tuple[str, ...]:
    return tuple(_KINDS)


def node_class(name: str) -> type[NodeBase]:
    return _KINDS[name]


def node_union() -> Any:
    """The discriminated union of every registered kind."""
    return Annotated[Union[tuple(_KINDS.values())], Field(discriminator="kind")]  # noqa: UP007
