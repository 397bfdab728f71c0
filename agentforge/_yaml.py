"""YAML text -> plain data plus the line of every key, shared by the workflow and environment loaders.

Hostile text is refused before it is built: anchors and aliases are allowed, but the document they
expand to is measured first (a "billion laughs" file is refused in milliseconds, not built), an alias
may not refer to its own anchor, and nesting is bounded. Every refusal is a ``SpecError`` with a line.
"""

from __future__ import annotations

import gc
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from agentforge.errors import Problem, SpecError

YamlPath = tuple[str | int, ...]

# All aliases of one document together may add this many values (scalars, mappings, sequences).
MAX_ALIAS_VALUES = 100_000
# Deeper nesting than any workflow, env or settings file needs; also keeps the builder off the recursion limit.
MAX_DEPTH = 100


@dataclass
class SourceMap:
    """The file a spec came from and the 1-based line of each YAML path in it."""

    file: str | None
    lines: dict[YamlPath, int] = field(default_factory=dict)
    data: Any = None
    _node_indexes: dict[str, int] | None = field(default=None, repr=False, compare=False)

    def line(self, path: YamlPath) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def node_line(self, node_id: str) -> int | None:
        index = self.node_index(node_id)
        return self.line(("nodes", index)) if index is not None else None

    def node_index(self, node_id: str) -> int | None:
        """The position of the first node with this id (an index built once, so lookups stay O(1))."""
        if self._node_indexes is None:
            indexes: dict[str, int] = {}
            nodes = self.data.get("nodes") if isinstance(self.data, dict) else None
            if isinstance(nodes, list):
                for i, node in enumerate(nodes):
                    if isinstance(node, dict) and isinstance(node.get("id"), str):
                        indexes.setdefault(node["id"], i)
            self._node_indexes = indexes
        return self._node_indexes.get(node_id)


def _refuse(message: str, file: str | None, line: int | None, hint: str | None = None,
            code: str = "yaml") -> SpecError:
    return SpecError([Problem(message, file=file, line=line, hint=hint, code=code)])


def _too_deep(max_depth: int, file: str | None, node: yaml.Node) -> SpecError:
    return _refuse(f"the YAML nests more than {max_depth} levels deep", file, node.start_mark.line + 1,
                   hint="flatten the structure; no agentforge file needs this depth", code="yaml_depth")


def _measure(root: yaml.Node, file: str | None, max_alias_values: int, max_depth: int) -> None:
    """Refuse a document whose aliases expand too far, refer to themselves, or that nests too deep.

    Sizes and heights are computed once per distinct node (aliases share nodes), so this is linear in
    the text, whatever the expansion would be.
    """
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    refs: dict[int, int] = {}
    nodes: dict[int, yaml.Node] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                children += [k, v]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            height[key] = 1 + max((height[id(c)] for c in children), default=0)
            if height[key] > max_depth:
                raise _too_deep(max_depth, file, node)
            continue
        if key in size:
            continue
        nodes[key] = node
        on_path.add(key)
        stack.append((node, True))
        for child in children:
            ckey = id(child)
            refs[ckey] = refs.get(ckey, 0) + 1
            if ckey in on_path:
                raise _refuse("a YAML alias refers to its own anchor (the value would contain itself)", file,
                              child.start_mark.line + 1, hint="remove the alias or point it at another anchor",
                              code="yaml_alias")
            if ckey not in size:
                stack.append((child, False))
    plain = len(size)
    total = size[id(root)]
    if total - plain > max_alias_values:
        worst = max((k for k, n in refs.items() if n > 1), key=lambda k: size[k] * (refs[k] - 1))
        raise _refuse(
            f"YAML aliases expand this document to {total:,} values, more than the {max_alias_values:,} "
            f"aliases may add (the value anchored here is repeated {refs[worst]} times, {size[worst]:,} values "
            "each)", file, nodes[worst].start_mark.line + 1,
            hint="repeat the value itself, or use fewer aliases; nested aliases multiply", code="yaml_alias")


def _construct(node: yaml.Node, path: YamlPath, lines: dict[YamlPath, int], file: str | None,
               max_depth: int) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if len(path) >= max_depth and not isinstance(node, yaml.ScalarNode):
        raise _too_deep(max_depth, file, node)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise _refuse("a mapping key must be a plain value, not a list or mapping", file,
                              key_node.start_mark.line + 1, hint="quote the key, or move the value under it",
                              code="yaml_key")
            key = _scalar(key_node, file)
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, (*path, key), lines, file, max_depth)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), lines, file, max_depth) for i, item in enumerate(node.value)]
    return _scalar(node, file)


_SCALAR_LOADER = yaml.SafeLoader("")
# libyaml composes ~30x faster and keeps the marks we need for line numbers.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_STR_TAG = "tag:yaml.org,2002:str"


def _scalar(node: yaml.Node, file: str | None) -> Any:
    if node.tag == _STR_TAG and isinstance(node, yaml.ScalarNode):
        return node.value  # most values: what the constructor would return, without its bookkeeping
    try:
        return _SCALAR_LOADER.construct_object(node, deep=True)
    except yaml.YAMLError as exc:  # an unknown or unsafe tag (!!python/..., !foo), a bad !!binary, ...
        problem = getattr(exc, "problem", None) or str(exc)
        raise _refuse(f"malformed YAML: {problem}", file, node.start_mark.line + 1,
                      hint="agentforge files hold plain data: remove the '!' tag, or quote the value") from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer past Python's 4300-digit limit, a bad date
        raise _refuse(f"cannot read the value '{str(node.value)[:40]}': {exc}", file, node.start_mark.line + 1,
                      hint="quote it to keep it as text") from None


def _parse_hint(problem: str, line_text: str) -> str | None:
    """A hint for the YAML mistakes people make most in agentforge files."""
    in_flow = "flow mapping" in problem or "flow sequence" in problem or "expected ',' or" in problem
    if in_flow and re.search(r"\w\[", line_text):
        return ("a type like list[int] inside a {...} flow mapping must be quoted: {numbers: 'list[int]'}, "
                "or write the mapping one key per line")
    if "mapping values are not allowed" in problem:
        return "a value containing ': ' must be quoted, or written as a block scalar ('|')"
    return None


def parse_yaml(text: str, file: str | None = None, *, max_alias_values: int = MAX_ALIAS_VALUES,
               max_depth: int = MAX_DEPTH) -> SourceMap:
    """Parse YAML text into plain data plus a line map; malformed or hostile YAML raises ``SpecError``."""
    # The collector would rescan every node built so far again and again (3x the time of a 10,000-node
    # file); what is built here holds no reference cycles, so it can wait until the parse is done.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _parse(text, file, max_alias_values, max_depth)
    finally:
        if collecting:
            gc.enable()


def _parse(text: str, file: str | None, max_alias_values: int, max_depth: int) -> SourceMap:
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        if "maximum nesting depth" in str(context or ""):
            problem = f"{context} ({problem})" if problem else str(context)
        lines = text.splitlines()
        line_text = lines[line - 1] if line is not None and 0 < line <= len(lines) else ""
        raise _refuse(f"malformed YAML: {problem}", file, line, hint=_parse_hint(problem, line_text)) from exc
    lines_map: dict[YamlPath, int] = {}
    if root is None:
        return SourceMap(file=file, lines=lines_map, data=None)
    if "&" in text:  # no anchor, no alias: nothing can expand, and the builder bounds the depth itself
        _measure(root, file, max_alias_values, max_depth)
    data = _construct(root, (), lines_map, file, max_depth)
    return SourceMap(file=file, lines=lines_map, data=data)


def scalar_hint(expected: str, value: Any) -> str | None:
    """A hint when YAML typed a bare word the schema wanted as text (``label: yes`` is a boolean)."""
    if expected != "string_type":
        return None
    if isinstance(value, bool):
        return ("YAML reads unquoted yes, no, on, off, true and false as booleans: quote the word "
                "(label: 'yes')")
    if isinstance(value, int | float) or value is None:
        shown = "null" if value is None else "a number"
        return f"YAML read this as {shown}: quote it to keep it as text"
    return None
