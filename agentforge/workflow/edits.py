"""A spec edited as a value: typed edits, ``apply`` and its inverse ``diff``, ``Change`` and ``Candidate``.

An ``Edit`` is one of: set a component (``SetComponent``, or ``SetSampling``/``SetTools`` for a node's
sampling parameter or tool list), add, remove or replace a node, add, remove or rewire an edge, or set
a workflow-level field (``SetField``: inputs, outputs, defaults, ...). ``WorkflowSpec.apply`` applies a
list of them to a copy, validates the result fully and records the parent hash and the ``Change``;
``diff(a, b)`` returns edits with ``a.apply(diff(a, b)) == b``.

The stored form of a change is an RFC 6902 JSON Patch (``json_patch``), kept beside the typed edits;
``edits_from_json_patch`` turns a stored patch back into typed edits.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from difflib import SequenceMatcher, get_close_matches
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import Field, ValidationError, field_validator

from agentforge.errors import Problem, SpecError
from agentforge.workflow.nodes.base import SAMPLING_PARAMS, Edge, FrozenModel, node_class

if TYPE_CHECKING:
    from agentforge.workflow.spec import WorkflowSpec

NodeData = dict[str, Any]
SPEC_FIELDS = ("name", "description", "inputs", "outputs", "state", "defaults", "tools", "entry")
SamplingParam = Literal["model", "temperature", "top_p", "max_tokens", "seed", "n"]


class EditFailed(ValueError):
    """Raised inside ``apply``; becomes a ``SpecError`` naming the edit."""


def _node_data(value: Any) -> Any:
    """Edits carry nodes as JSON data (a node model given is dumped), so they serialise as they are."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    return value


def _edge_data(edge: Edge) -> dict[str, Any]:
    return edge.model_dump(mode="json", by_alias=True)


class _Edit(FrozenModel):
    before: Any = Field(default=None, description="The value before the edit (filled in when applied).")
    after: Any = Field(default=None, description="The value after the edit (filled in when applied).")

    def target(self) -> str:
        """What the edit touches, for messages (a node id, a component name, an edge)."""
        raise NotImplementedError

    def nodes(self) -> tuple[str, ...]:
        """The node ids the edit touches."""
        return ()

    def run(self, data: dict[str, Any]) -> tuple[Any, Any]:
        """Apply to the spec's data in place; return (before, after)."""
        raise NotImplementedError


def _node_index(data: dict[str, Any], node_id: str) -> int:
    for i, node in enumerate(data["nodes"]):
        if node.get("id") == node_id:
            return i
    close = get_close_matches(node_id, [n.get("id", "") for n in data["nodes"]], n=1)
    raise EditFailed(f"no node '{node_id}'" + (f" (did you mean '{close[0]}'?)" if close else ""))


def _components_of(node: NodeData) -> dict[str, str]:
    """Component name -> kind for a node given as data."""
    kind = node.get("kind")
    try:
        model = node_class(str(kind)).model_validate(node)
    except KeyError:
        raise EditFailed(f"unknown node kind '{kind}'") from None
    except ValidationError as exc:
        raise EditFailed(f"node '{node.get('id')}' is not valid: {exc.errors()[0]['msg']}") from None
    return {c.name: c.kind for c in model.components()}


def _get(container: Any, path: Sequence[str | int]) -> Any:
    for part in path:
        if isinstance(container, dict):
            container = container.get(part)  # type: ignore[call-overload]
        elif isinstance(container, list) and isinstance(part, int) and part < len(container):
            container = container[part]
        else:
            return None
    return container


def _set(container: Any, path: Sequence[str | int], value: Any) -> None:
    for part in path[:-1]:
        nxt = container.get(part) if isinstance(container, dict) else container[part]
        if nxt is None:
            raise EditFailed(f"'{part}' is not set on this node")
        container = nxt
    container[path[-1]] = value


def _split(name: str) -> tuple[str, tuple[str | int, ...]]:
    node_id, _, rest = name.partition(".")
    if not rest:
        raise EditFailed(f"component name '{name}' must look like 'node_id.field'")
    return node_id, tuple(int(p) if p.isdigit() else p for p in rest.split("."))


def _set_component(data: dict[str, Any], name: str, value: Any, kinds: tuple[str, ...] | None) -> tuple[Any, Any]:
    node_id, path = _split(name)
    node = data["nodes"][_node_index(data, node_id)]
    known = _components_of(node)
    if name not in known:
        close = get_close_matches(name, list(known), n=1)
        raise EditFailed(f"'{name}' is not a component" + (f" (did you mean '{close[0]}'?)" if close else
                                                          f"; the node has {', '.join(known) or 'none'}"))
    if kinds is not None and known[name] not in kinds:
        raise EditFailed(f"'{name}' is a {known[name]} component, not {' or '.join(kinds)}")
    before = copy.deepcopy(_get(node, path))
    _set(node, path, copy.deepcopy(value))
    return before, value


class SetComponent(_Edit):
    """Set one named component (``ask.instruction``, ``vote.member.demos``, ``pick.routes.0.label``)."""

    op: Literal["set_component"] = "set_component"
    name: str
    value: Any = None

    def target(self) -> str:
        return self.name

    def nodes(self) -> tuple[str, ...]:
        return (self.name.partition(".")[0],)

    def run(self, data: dict[str, Any]) -> tuple[Any, Any]:
        return _set_component(data, self.name, self.value, None)


class SetSampling(_Edit):
    """Set one sampling parameter of a node (``temperature``, ``n``, ``model``, ...)."""

    op: Literal["set_sampling"] = "set_sampling"
    node: str
    param: SamplingParam
    value: Any = None

    def target(self) -> str:
        return f"{self.node}.{self.param}"

    def nodes(self) -> tuple[str, ...]:
        return (self.node,)

    def run(self, data: dict[str, Any]) -> tuple[Any, Any]:
        return _set_component(data, self.target(), self.value, ("sampling",))


class SetTools(_Edit):
    """Set the tools a node may call."""

    op: Literal["set_tools"] = "set_tools"
    node: str
    tools: tuple[str, ...]

    def target(self) -> str:
        return f"{self.node}.tools"

    def nodes(self) -> tuple[str, ...]:
        return (self.node,)

    def run(self, data: dict[str, Any]) -> tuple[Any, Any]:
        return _set_component(data, self.target(), list(self.tools), ("tools",))


class SetField(_Edit):
    """Set a workflow-level field: name, description, inputs, outputs, state, defaults, tools or entry."""

    op: Literal["set_field"] = "set_field"
    field: Literal["name", "description", "inputs", "outputs", "state", "defaults", "tools", "entry"]
    value: Any = None

    def target(self) -> str:
        return self.field

    def run(self, data: dict[str, Any]) -> tuple[Any, Any]:
        before = copy.deepcopy(data.get(self.field))
        data[self.field] = copy.deepcopy(self.value)
        return before, self.value


class _NodeEdit(_Edit):
    """An edit that carries a whole node (as data), targeting the node of that id."""

    node: NodeData

    @field_validator("node", mode="before")
    @classmethod
    def _dump_node(cls, value: Any) -> Any:
        return _node_data(value)

    def target(self) -> str:
        return str(self.node.get("id"))

    def nodes(self) -> tuple[str, ...]:
        return (self.target(),)


class AddNode(_NodeEdit):
    """Add a node, at ``index`` in the node list (default: last)."""

    op: Literal["add_node"] = "add_node"
    index: int | None = None

    def run(self, data: dict[str, Any]) -> tuple[Any, Any]:
        if any(n.get("id") == self.node.get("id") for n in data["nodes"]):
            raise EditFailed(f"a node '{self.node.get('id')}' already exists (use replace_node)")
        index = len(data["nodes"]) if self.index is None else self.index
        if not 0 <= index <= len(data["nodes"]):
            raise EditFailed(f"index {index} is outside 0..{len(data['nodes'])}")
        data["nodes"].insert(index, copy.deepcopy(self.node))
        return None, self.node


class RemoveNode(_Edit):
    """Remove a node (its edges are not touched: remove or rewire them too)."""

    op: Literal["remove_node"] = "remove_node"
    id: str

    def target(self) -> str:
        return self.id

    def nodes(self) -> tuple[str, ...]:
        return (self.id,)

    def run(self, data: dict[str, Any]) -> tuple[Any, Any]:
        return data["nodes"].pop(_node_index(data, self.id)), None


class ReplaceNode(_NodeEdit):
    """Replace the node with the same id, in place."""

    op: Literal["replace_node"] = "replace_node"

    def run(self, data: dict[str, Any]) -> tuple[Any, Any]:
        index = _node_index(data, self.target())
        before = data["nodes"][index]
        data["nodes"][index] = copy.deepcopy(self.node)
        return before, self.node


def _edge_index(data: dict[str, Any], edge: Edge) -> int:
    want = Edge.model_validate(_edge_data(edge))
    for i, item in enumerate(data["edges"]):
        if Edge.model_validate(item) == want:
            return i
    raise EditFailed(f"no edge {_show_edge(edge)}")


def _show_edge(edge: Edge) -> str:
    return f"{','.join(edge.sources())} -> {','.join(edge.targets())}"


class AddEdge(_Edit):
    """Add an edge, at ``index`` in the edge list (default: last)."""

    op: Literal["add_edge"] = "add_edge"
    edge: Edge
    index: int | None = None

    def target(self) -> str:
        return _show_edge(self.edge)

    def nodes(self) -> tuple[str, ...]:
        return (*self.edge.sources(), *self.edge.targets())

    def run(self, data: dict[str, Any]) -> tuple[Any, Any]:
        index = len(data["edges"]) if self.index is None else self.index
        if not 0 <= index <= len(data["edges"]):
            raise EditFailed(f"index {index} is outside 0..{len(data['edges'])}")
        data["edges"].insert(index, _edge_data(self.edge))
        return None, _edge_data(self.edge)


class RemoveEdge(_Edit):
    """Remove an edge (the first equal one)."""

    op: Literal["remove_edge"] = "remove_edge"
    edge: Edge

    def target(self) -> str:
        return _show_edge(self.edge)

    def nodes(self) -> tuple[str, ...]:
        return (*self.edge.sources(), *self.edge.targets())

    def run(self, data: dict[str, Any]) -> tuple[Any, Any]:
        return data["edges"].pop(_edge_index(data, self.edge)), None


class RewireEdge(_Edit):
    """Replace edge ``old`` with ``new``, in place."""

    op: Literal["rewire_edge"] = "rewire_edge"
    old: Edge
    new: Edge

    def target(self) -> str:
        return f"{_show_edge(self.old)} => {_show_edge(self.new)}"

    def nodes(self) -> tuple[str, ...]:
        return (*self.old.sources(), *self.old.targets(), *self.new.sources(), *self.new.targets())

    def run(self, data: dict[str, Any]) -> tuple[Any, Any]:
        index = _edge_index(data, self.old)
        before = data["edges"][index]
        data["edges"][index] = _edge_data(self.new)
        return before, _edge_data(self.new)


Edit = Annotated[
    Union[SetComponent, SetSampling, SetTools, SetField, AddNode, RemoveNode, ReplaceNode,  # noqa: UP007
          AddEdge, RemoveEdge, RewireEdge],
    Field(discriminator="op"),
]


class Change(FrozenModel):
    """Why and how a version differs from its parent (written by optimizers, read by the gate and reports)."""

    edits: tuple[Edit, ...] = Field(default=(), description="The edits, as applied: each with its before and after.")
    author: str = Field(default="human", description="Who proposed it: an optimizer's name, or 'human'.")
    rationale: str = Field(default="", description="Why, in the author's words.")
    summary: str = Field(default="", description="A one-line title.")
    patch: tuple[dict[str, Any], ...] = Field(
        default=(), description="The RFC 6902 JSON Patch from the parent's content to this version's.")

    def nodes(self) -> tuple[str, ...]:
        """The node ids the edits touch, in order of first touch."""
        return tuple(dict.fromkeys(n for e in self.edits for n in e.nodes()))

    def targets(self) -> tuple[str, ...]:
        return tuple(e.target() for e in self.edits)


class Candidate(FrozenModel):
    """The unit optimizers propose and the loop evaluates: a new spec, its parent, and the change."""

    spec: WorkflowSpec
    parent_hash: str
    change: Change

    @classmethod
    def of(cls, spec: WorkflowSpec) -> Candidate:
        """The candidate a spec made by ``apply`` describes: itself, its parent's hash and its change."""
        if spec.parent is None or spec.change is None:
            raise ValueError("the spec records no parent and change: make it with WorkflowSpec.apply")
        return cls(spec=spec, parent_hash=spec.parent, change=spec.change)


def _edit_problem(index: int, edit: _Edit, message: str, node: str | None = None) -> Problem:
    op = getattr(edit, "op", type(edit).__name__)
    return Problem(f"edit #{index} ({op} {edit.target()}): {message}", node=node, code="bad_edit")


def apply_edits(spec: WorkflowSpec, edits: Sequence[Any], change: Change | None = None, *,
                tool_names: Iterable[str] | None = None, settings: Any = None) -> WorkflowSpec:
    """See ``WorkflowSpec.apply``."""
    from agentforge._yaml import SourceMap
    from agentforge.workflow.loader import problems_from_validation
    from agentforge.workflow.validate import find_problems

    data, applied = _run(spec, edits)
    from agentforge.workflow.spec import WorkflowSpec

    source = SourceMap(file=spec.source_file, data=data)
    try:
        child = WorkflowSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_blame(problems_from_validation(exc, data, source), applied)) from None
    child._source = source
    problems = find_problems(child, settings=settings, tool_names=tool_names)
    if problems:
        raise SpecError(_blame(problems, applied))
    change = (change or Change()).model_copy(update={"edits": tuple(applied), "patch": tuple(json_patch(spec, child))})
    data = child.model_dump(by_alias=True, round_trip=True)
    result = WorkflowSpec.model_validate({**data, "parent": spec.hash, "change": change})
    result._source = source
    return result


def _run(spec: WorkflowSpec, edits: Sequence[Any]) -> tuple[dict[str, Any], list[_Edit]]:
    """Apply ``edits`` to a copy of the spec's data; return it and the edits with before and after."""
    data = spec.model_dump(mode="json", by_alias=True, exclude={"parent", "change"})
    data["nodes"], data["edges"] = list(data["nodes"]), list(data["edges"])
    applied: list[_Edit] = []
    for i, raw in enumerate(edits):
        edit = raw if isinstance(raw, _Edit) else _parse_edit(i, raw)
        try:
            before, after = edit.run(data)
        except EditFailed as exc:
            raise SpecError([_edit_problem(i, edit, str(exc))]) from None
        applied.append(edit.model_copy(update={"before": before, "after": after}))
    return data, applied


def annotate(spec: WorkflowSpec, edits: Sequence[Edit]) -> list[Edit]:
    """``edits`` with their before and after on ``spec``, without validating the result (for display)."""
    return list(_run(spec, edits)[1])  # type: ignore[arg-type]


def _parse_edit(index: int, raw: Any) -> _Edit:
    from pydantic import TypeAdapter

    try:
        return TypeAdapter(Edit).validate_python(raw)  # type: ignore[no-any-return]
    except ValidationError as exc:
        op = raw.get("op") if isinstance(raw, dict) else type(raw).__name__
        raise SpecError([Problem(f"edit #{index} ({op}): {exc.errors()[0]['msg']}", code="bad_edit")]) from None


def _blame(problems: list[Problem], edits: list[_Edit]) -> list[Problem]:
    """Name the edits behind each problem: those touching its node, else all of them."""
    out: list[Problem] = []
    for p in problems:
        blamed = [(i, e) for i, e in enumerate(edits) if p.node and p.node in e.nodes()] or list(enumerate(edits))
        names = "; ".join(f"edit #{i} ({getattr(e, 'op', '?')} {e.target()})" for i, e in blamed)
        out.append(Problem(f"after {names}: {p.message}", file=p.file, line=p.line, node=p.node, field=p.field,
                           hint=p.hint, code=p.code))
    return out


# -- diff --------------------------------------------------------------------------------------
def diff(a: WorkflowSpec, b: WorkflowSpec) -> list[Edit]:
    """Edits that turn ``a`` into ``b``: ``a.apply(diff(a, b))`` has ``b``'s content (and hash).

    Nodes in both with the same kind differ by component edits where that accounts for every
    difference, else by one ``replace_node``; node and edge order are kept with removes and indexed adds.
    """
    da, db = a.content(), b.content()
    # Values from the full dump: a default that is not None (``defaults.model``) may be set to None.
    full = b.model_dump(mode="json", by_alias=True)
    edits: list[Any] = [SetField(field=f, value=full.get(f)) for f in SPEC_FIELDS if da.get(f) != db.get(f)]
    edits += _diff_nodes(da["nodes"], db["nodes"])
    edits += _diff_edges(da.get("edges", []), db.get("edges", []))
    return edits


def _keep_order(a_keys: list[Any], b_keys: list[Any]) -> set[Any]:
    """Keys in both lists that keep their relative order (a longest matching run of blocks)."""
    matcher = SequenceMatcher(a=a_keys, b=b_keys, autojunk=False)
    kept: set[Any] = set()
    for block in matcher.get_matching_blocks():
        kept.update(a_keys[block.a:block.a + block.size])
    return kept


def _diff_nodes(a_nodes: list[NodeData], b_nodes: list[NodeData]) -> list[Any]:
    a_ids = [n["id"] for n in a_nodes]
    b_ids = [n["id"] for n in b_nodes]
    common = [i for i in a_ids if i in set(b_ids)]
    kept = _keep_order(common, [i for i in b_ids if i in set(a_ids)])
    a_by, b_by = {n["id"]: n for n in a_nodes}, {n["id"]: n for n in b_nodes}
    edits: list[Any] = [RemoveNode(id=i) for i in a_ids if i not in kept]
    for node_id in a_ids:
        if node_id in kept and a_by[node_id] != b_by[node_id]:
            edits += _diff_node(a_by[node_id], b_by[node_id])
    edits += [AddNode(node=b_by[i], index=j) for j, i in enumerate(b_ids) if i not in kept]
    return edits


def _diff_node(a: NodeData, b: NodeData) -> list[Any]:
    if a.get("kind") != b.get("kind"):
        return [ReplaceNode(node=b)]
    kinds = _components_of(a)
    edits: list[Any] = []
    work = copy.deepcopy(a)
    for name, kind in kinds.items():
        _, path = _split(name)
        want = _get(b, path)
        if _get(work, path) == want:
            continue
        try:
            _set(work, path, want)
        except EditFailed:
            return [ReplaceNode(node=b)]
        edits.append(_component_edit(name, kind, path, want))
    # A component left unset in ``b`` is absent there but ``None`` in ``work``; compare as content.
    if _content(work) != _content(b):
        return [ReplaceNode(node=b)]
    return edits


def _content(node: NodeData) -> Any:
    return node_class(str(node["kind"])).model_validate(node).model_dump(mode="json", by_alias=True,
                                                                         exclude_none=True)


def _component_edit(name: str, kind: str, path: tuple[str | int, ...], value: Any) -> Any:
    node_id = name.partition(".")[0]
    if len(path) == 1 and kind == "sampling" and path[0] in (*SAMPLING_PARAMS, "n"):
        return SetSampling(node=node_id, param=path[0], value=value)  # type: ignore[arg-type]
    if path == ("tools",) and kind == "tools":
        return SetTools(node=node_id, tools=tuple(value or ()))
    return SetComponent(name=name, value=value)


def _edge_key(edge: dict[str, Any]) -> str:
    import json

    return json.dumps(Edge.model_validate(edge).model_dump(mode="json", by_alias=True), sort_keys=True)


def _diff_edges(a_edges: list[dict[str, Any]], b_edges: list[dict[str, Any]]) -> list[Any]:
    a_keys, b_keys = [_edge_key(e) for e in a_edges], [_edge_key(e) for e in b_edges]
    matcher = SequenceMatcher(a=a_keys, b=b_keys, autojunk=False)
    kept_a: set[int] = set()
    kept_b: set[int] = set()
    for block in matcher.get_matching_blocks():
        kept_a.update(range(block.a, block.a + block.size))
        kept_b.update(range(block.b, block.b + block.size))
    # ``RemoveEdge`` takes the first equal edge: equal edges are interchangeable, so the kept ones
    # end up as the matched run, in order, and indexed adds then rebuild ``b``'s list.
    edits: list[Any] = [RemoveEdge(edge=Edge.model_validate(a_edges[i]))
                        for i in range(len(a_edges)) if i not in kept_a]
    edits += [AddEdge(edge=Edge.model_validate(b_edges[j]), index=j) for j in range(len(b_edges)) if j not in kept_b]
    return edits


# -- JSON Patch (RFC 6902): the stored form of a change ---------------------------------------
def json_patch(a: WorkflowSpec, b: WorkflowSpec) -> list[dict[str, Any]]:
    """The RFC 6902 patch from ``a``'s content to ``b``'s."""
    import jsonpatch

    return list(jsonpatch.make_patch(a.content(), b.content()).patch)


def edits_from_json_patch(base: WorkflowSpec, patch: Sequence[dict[str, Any]]) -> list[Edit]:
    """Typed edits equivalent to a stored patch on ``base``."""
    import jsonpatch

    from agentforge.workflow.spec import WorkflowSpec

    try:
        content = jsonpatch.apply_patch(base.content(), list(patch))
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise SpecError([Problem(f"the patch does not apply: {exc}", code="bad_patch")]) from None
    try:
        target = WorkflowSpec.model_validate(content)
    except ValidationError as exc:
        raise SpecError([Problem(f"the patch gives an invalid workflow: {exc.errors()[0]['msg']}",
                                 code="bad_patch")]) from None
    return diff(base, target)
