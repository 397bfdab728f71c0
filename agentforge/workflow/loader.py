"""YAML -> WorkflowSpec, keeping the line of every key so errors can point at it."""

from __future__ import annotations

from difflib import get_close_matches
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from agentforge._yaml import SourceMap, YamlPath, parse_yaml, scalar_hint
from agentforge.config import get_settings
from agentforge.errors import Problem, SpecError
from agentforge.workflow.nodes.base import node_class, node_kinds
from agentforge.workflow.spec import WorkflowSpec


def load_spec(path: str | Path) -> WorkflowSpec:
    """Read, parse and model-validate a workflow file (static graph checks are ``validate``'s job)."""
    source = read_source(path)
    return spec_from_data(source.data, source)


def other_kind(data: Any) -> str | None:
    """What a parsed YAML file is, when it is plainly not a workflow (``kind: env``, no ``nodes``), else None."""
    if not isinstance(data, dict):
        return None
    kind = data.get("kind")
    if kind is not None and kind != "workflow":
        return f"kind: {kind}"
    if kind is None and "nodes" not in data:
        return "no 'kind: workflow' and no 'nodes'"
    return None


def read_source(path: str | Path) -> SourceMap:
    """Read and parse a workflow file within the size limit, keeping the line of every key."""
    path = Path(path)
    limit = get_settings().max_workflow_bytes
    try:
        with path.open("rb") as handle:
            raw = handle.read(limit + 1)  # never more: a device or a pipe may not end
        text = raw.decode("utf-8")
    except FileNotFoundError as exc:
        raise SpecError([Problem("file not found", file=str(path), code="not_found")]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Problem(f"cannot read file: {exc}", file=str(path), code="unreadable")]) from exc
    if len(raw) > limit:
        raise SpecError([_too_large(f"the file is larger than {limit:,} bytes", str(path), 1,
                                    "max_workflow_bytes")])
    return parse_yaml(text, file=str(path))


def _too_large(message: str, file: str | None, line: int | None, setting: str) -> Problem:
    return Problem(f"{message}, the limit for a workflow", file=file, line=line, code="too_large",
                   hint=f"split it into subworkflows, or raise '{setting}' in agentforge.yaml")


def spec_from_text(text: str, file: str | None = None) -> WorkflowSpec:
    source = parse_yaml(text, file=file)
    return spec_from_data(source.data, source)


def spec_from_data(data: Any, source: SourceMap | None = None) -> WorkflowSpec:
    source = source or SourceMap(file=None, data=data)
    if source.data is None:
        source.data = data
    if not isinstance(data, dict):
        raise SpecError([Problem("a workflow file must be a YAML mapping", file=source.file, line=1)])
    nodes = data.get("nodes")
    most = get_settings().max_workflow_nodes
    if isinstance(nodes, list) and len(nodes) > most:
        raise SpecError([_too_large(f"the workflow has {len(nodes):,} nodes, more than {most:,}", source.file,
                                    source.line(("nodes",)), "max_workflow_nodes")])
    try:
        spec = WorkflowSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(problems_from_validation(exc, data, source)) from None
    spec._source = source
    if any(node.child_workflows() for node in spec.nodes):
        _ = spec.hash  # the identity of the children as they are now, not whenever it is first asked for
    return spec


def problems_from_validation(exc: ValidationError, data: dict[str, Any], source: SourceMap) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[YamlPath, str]] = set()
    for err in exc.errors(include_url=False):
        loc = _yaml_path(err["loc"], data)
        etype = err["type"]
        if etype == "too_short" and _has_items(data, loc):
            continue  # pydantic's echo of an item that failed on its own; that item is reported
        if etype in ("union_tag_invalid", "union_tag_not_found") and len(loc) == 2:
            node = _at(data, loc)
            if isinstance(node, dict) and "kind" in node:
                loc = (*loc, "kind")
        node_id = _node_id_at(loc, data)
        key = (loc, etype)
        if key in seen:
            continue
        seen.add(key)
        field_name = ".".join(str(p) for p in loc[2:] if not isinstance(p, int)) if node_id else None
        if not node_id:
            field_name = ".".join(str(p) for p in loc) or None
        message, hint = _describe(err, loc, data)
        problems.append(
            Problem(message, file=source.file, line=source.line(loc), node=node_id, field=field_name,
                    hint=hint, code=etype)
        )
    return _collapse_union_noise(problems)


def _at(data: Any, loc: YamlPath) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _has_items(data: Any, loc: YamlPath) -> bool:
    value = _at(data, loc)
    return isinstance(value, list) and len(value) > 0


def _yaml_path(loc: tuple[Any, ...], data: dict[str, Any]) -> YamlPath:
    """Map a pydantic error location to a YAML path (drop union tags and branch names)."""
    out: list[str | int] = []
    cursor: Any = data
    for i, part in enumerate(loc):
        if i == 2 and loc[0] == "nodes" and part in node_kinds():
            continue  # the discriminator tag pydantic inserts after the node index
        in_dict = isinstance(cursor, dict) and part in cursor
        in_list = isinstance(cursor, list) and isinstance(part, int) and part < len(cursor)
        if in_dict or in_list:
            out.append(part)
            cursor = cursor[part]
        elif isinstance(cursor, dict) and isinstance(part, str) and not _is_branch_name(part):
            out.append(part)  # a missing key: point at its parent mapping
            cursor = None
    return tuple(out)


def _is_branch_name(part: str) -> bool:
    return part in ("str", "int", "float", "bool", "dict", "list") or "[" in part or part.startswith("function")


def _node_id_at(loc: YamlPath, data: dict[str, Any]) -> str | None:
    if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int):
        nodes = data.get("nodes")
        if isinstance(nodes, list) and loc[1] < len(nodes) and isinstance(nodes[loc[1]], dict):
            node_id = nodes[loc[1]].get("id")
            return str(node_id) if node_id is not None else f"#{loc[1]}"
    return None


def _model_fields_at(loc: YamlPath, data: dict[str, Any]) -> list[str]:
    """Known keys of the model that owns ``loc``'s parent, for 'did you mean' suggestions."""
    from agentforge.workflow import spec as s

    parent = loc[:-1]
    model: type[BaseModel] | None = None
    if parent == ():
        model = s.WorkflowSpec
    elif len(parent) == 2 and parent[0] == "nodes":
        kind = data["nodes"][parent[1]].get("kind") if isinstance(data.get("nodes"), list) else None
        model = node_class(kind) if kind in node_kinds() else None
    elif parent == ("defaults",):
        model = s.Defaults
    elif len(parent) == 2 and parent[0] == "edges":
        return ["from", "to"]
    elif len(parent) == 4 and parent[2] == "routes":
        model = s.Route
    elif len(parent) == 3 and parent[2] in ("member",):
        model = s.EnsembleMember
    elif len(parent) == 3 and parent[2] in ("llm", "judge"):
        model = s.RouterChoice
    if model is None:
        return []
    names = []
    for name, info in model.model_fields.items():
        names.append(info.alias or name)
    return names


def _describe(err: dict[str, Any], loc: YamlPath, data: dict[str, Any]) -> tuple[str, str | None]:
    etype = err["type"]
    if etype == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        close = get_close_matches(key, _model_fields_at(loc, data), n=1)
        hint = f"did you mean '{close[0]}'?" if close else None
        return f"unknown field '{key}'", hint
    if etype == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag", "?")
        close = get_close_matches(str(tag), node_kinds(), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(node_kinds())}"
        return f"unknown node kind '{tag}'", hint
    if etype == "too_short":
        return err.get("msg", "too few items"), "add at least one item"
    if etype == "union_tag_not_found":
        return "node has no 'kind'", f"add 'kind:' with one of {', '.join(node_kinds())}"
    if etype == "missing":
        name = err["loc"][-1]
        return f"missing required field '{name}'", f"add '{name}:' here"
    msg = err.get("msg", "invalid value")
    return msg[0].lower() + msg[1:] if msg else "invalid value", scalar_hint(etype, err.get("input"))


def _collapse_union_noise(problems: list[Problem]) -> list[Problem]:
    """Plain-union fields (``str | tuple``) report one error per branch; keep one per location."""
    out: list[Problem] = []
    seen: set[tuple[int | None, str | None, str | None]] = set()
    for p in problems:
        key = (p.line, p.node, p.field)
        if key in seen and p.code not in ("extra_forbidden", "missing"):
            continue
        seen.add(key)
        out.append(p)
    return out


def spec_to_yaml(spec: WorkflowSpec) -> str:
    """The spec's content as YAML that loads back to the same hash (lineage is not written)."""
    import yaml

    return yaml.safe_dump(spec.content(), sort_keys=False, allow_unicode=True, width=100)
