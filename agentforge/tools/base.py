"""Tools: plain Python functions that an agent may call, described to the LLM by a JSON schema.

A function's type hints become a pydantic model that validates the LLM's arguments; the first paragraph
of its docstring becomes the description, and a Google-style ``Args:`` section describes the fields. A
parameter annotated :class:`ToolContext` is filled in by the runtime and hidden from the LLM.

Tools reach a workflow through a :class:`ToolRegistry`: the built-ins, plus custom tools that the
workflow names as explicit ``"package.module:attr"`` references.
"""

from __future__ import annotations

import asyncio
import difflib
import importlib
import inspect
import re
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, overload

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, PydanticUserError, ValidationError, create_model

from agentforge.errors import AgentforgeError, ConfigError, SandboxUnavailable, ToolError
from agentforge.logs import get_logger

__all__ = ["Tool", "ToolContext", "ToolRegistry", "default_registry", "tool"]

log = get_logger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI-style function calling accepts
_REF = re.compile(r"^(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<attr>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")
_ARGS_HEADERS = ("args:", "arguments:", "parameters:", "params:")
# Schema keywords whose values are data, not sub-schemas: copied as they are.
_DATA_KEYWORDS = frozenset({"default", "enum", "const", "examples"})


@dataclass(frozen=True)
class ToolContext:
    """What the runtime hands a tool besides the LLM's arguments."""

    workspace: Path


@dataclass(frozen=True)
class _Param:
    name: str  # the function's parameter name (and the name the LLM sees)
    field: str  # the attribute on the pydantic model (differs when the name would clash with BaseModel)
    kind: inspect._ParameterKind
    is_ctx: bool = False


class Tool:
    """A callable the LLM may use: name, description, argument schema, and the function itself."""

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None, description: str | None = None):
        if isinstance(fn, Tool) or inspect.isclass(fn) or not callable(fn):
            raise ConfigError(f"a tool must be a function, got {fn!r}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "")
        if not _NAME.match(self.name):
            raise ConfigError(f"invalid tool name {self.name!r}: use 1-64 letters, digits, '_' or '-'")
        doc = inspect.getdoc(fn) or ""
        self.description = description if description is not None else _first_paragraph(doc)
        self.is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 (a callable object with an async __call__)
        )
        self._params, self.args_model = self._build_model(doc)
        try:
            raw_schema = self.args_model.model_json_schema()
        except (PydanticUserError, TypeError, ValueError) as exc:
            raise ConfigError(f"tool '{self.name}': its arguments have no JSON schema: {exc}") from exc
        self._schema = _inline_refs(raw_schema, self.name)

    def _build_model(self, doc: str) -> tuple[list[_Param], type[BaseModel]]:
        try:
            sig = inspect.signature(self.fn)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"tool '{self.name}': cannot read its signature: {exc}") from exc
        hints = _type_hints(self.fn, self.name)
        docs = _arg_docs(doc)
        params: list[_Param] = []
        fields: dict[str, Any] = {}
        for i, p in enumerate(sig.parameters.values()):
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise ConfigError(f"tool '{self.name}': *args and **kwargs are not supported ('{p.name}')")
            annotation = hints.get(p.name, Any)
            if annotation is ToolContext:
                params.append(_Param(p.name, p.name, p.kind, is_ctx=True))
                continue
            clash = p.name.startswith("_") or p.name.startswith("model_") or hasattr(BaseModel, p.name)
            field = f"arg{i}_" if clash else p.name
            default = ... if p.default is p.empty else p.default
            info: dict[str, Any] = {"alias": p.name} if clash else {}
            if p.name in docs and typing.get_origin(annotation) is not Annotated:
                info["description"] = docs[p.name]
            fields[field] = (annotation, Field(default, **info) if info else default)
            params.append(_Param(p.name, field, p.kind))
        try:
            model = create_model(f"{self.name}_args", __config__=ConfigDict(extra="forbid"), **fields)
        except (PydanticUserError, TypeError, ValueError) as exc:
            raise ConfigError(f"tool '{self.name}': cannot build its argument model: {exc}") from exc
        return params, model

    @property
    def needs_context(self) -> bool:
        return any(p.is_ctx for p in self._params)

    def parameters_schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments, self-contained (no ``$ref``/``$defs``), for the LLM."""
        return _copy(self._schema)

    def renamed(self, name: str) -> Tool:
        return Tool(self.fn, name=name, description=self.description)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the underlying function directly, bypassing validation."""
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r})"

    def _bind(self, args: Mapping[str, Any], ctx: ToolContext | None) -> tuple[list[Any], dict[str, Any]]:
        if not isinstance(args, Mapping):
            got = type(args).__name__
            raise ToolError(f"tool '{self.name}': arguments must be a JSON object, got {got}", tool=self.name)
        try:
            model = self.args_model.model_validate(dict(args))
        except ValidationError as exc:
            errors = exc.errors()
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<args>'}: {e['msg']}" for e in errors)
            first = str(errors[0]["loc"][0]) if errors and errors[0]["loc"] else None
            raise ToolError(
                f"tool '{self.name}': invalid arguments: {problems}", tool=self.name, field=first
            ) from exc
        positional: list[Any] = []
        keyword: dict[str, Any] = {}
        for p in self._params:
            if p.is_ctx:
                if ctx is None:
                    raise ToolError(f"tool '{self.name}' needs a ToolContext", tool=self.name)
                value = ctx
            else:
                value = getattr(model, p.field)
            if p.kind is p.kind.POSITIONAL_ONLY:
                positional.append(value)
            else:
                keyword[p.name] = value
        return positional, keyword

    def _failed(self, exc: Exception) -> ToolError:
        detail = str(exc) if isinstance(exc, AgentforgeError) else f"{type(exc).__name__}: {exc}"
        return ToolError(f"tool '{self.name}' failed: {detail}", tool=self.name)

    async def acall(self, args: Mapping[str, Any], ctx: ToolContext | None = None) -> str:
        """Validate ``args``, run the tool, and return its result as text. Any failure is a ``ToolError``."""
        positional, keyword = self._bind(args, ctx)
        log.debug("tool.call", tool=self.name)
        try:
            if self.is_async:
                result = await self.fn(*positional, **keyword)
            else:
                result = await asyncio.to_thread(self.fn, *positional, **keyword)
        except SandboxUnavailable:
            raise  # systemic: the run stops rather than the model seeing it as a failed call
        except Exception as exc:
            raise self._failed(exc) from exc
        return _as_text(result)

    def call(self, args: Mapping[str, Any], ctx: ToolContext | None = None) -> str:
        """Blocking twin of :meth:`acall`. An async tool cannot be called from inside a running loop."""
        positional, keyword = self._bind(args, ctx)
        if self.is_async and _loop_running():
            raise ToolError(f"tool '{self.name}' is async: use `await tool.acall(...)`", tool=self.name)
        log.debug("tool.call", tool=self.name)
        try:
            call = self.fn(*positional, **keyword)
            result = asyncio.run(call) if self.is_async else call
        except SandboxUnavailable:
            raise  # systemic: the run stops rather than the model seeing it as a failed call
        except Exception as exc:
            raise self._failed(exc) from exc
        return _as_text(result)


@overload
def tool(fn: Callable[..., Any], *, name: str | None = None, description: str | None = None) -> Tool: ...


@overload
def tool(
    fn: None = None, *, name: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None, *, name: str | None = None, description: str | None = None
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a :class:`Tool` of a function: ``@tool`` or ``@tool(name=..., description=...)``."""

    def make(f: Callable[..., Any]) -> Tool:
        return Tool(f, name=name, description=description)

    return make if fn is None else make(fn)


class ToolRegistry:
    """Tools by name. Registries are built up, then copied (``with_refs``) rather than shared and mutated."""

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.register(t)

    def register(self, item: Tool | Callable[..., Any], *, replace: bool = False) -> Tool:
        t = item if isinstance(item, Tool) else Tool(item)
        if t.name in self._tools and not replace:
            raise ConfigError(f"a tool named '{t.name}' is already registered")
        self._tools[t.name] = t
        return t

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._tools, n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            known = ", ".join(self.names()) or "none"
            raise ToolError(f"unknown tool '{name}'{hint} (known tools: {known})", tool=name) from None

    def names(self) -> list[str]:
        return sorted(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def with_refs(self, refs: Mapping[str, str]) -> ToolRegistry:
        """A new registry: these tools plus ``{name: "package.module:attr"}`` custom tools."""
        new = ToolRegistry(self)
        for name, ref in refs.items():
            if name in new:
                raise ConfigError(f"custom tool '{name}' ({ref}) clashes with an existing tool", ref=ref)
            new.register(_load_ref(name, ref))
        return new


def default_registry() -> ToolRegistry:
    """A fresh registry holding the built-in tools."""
    from agentforge.tools import builtins

    return ToolRegistry(builtins.BUILTINS)


def _load_ref(name: str, ref: str) -> Tool:
    match = _REF.match(ref.strip()) if isinstance(ref, str) else None
    if match is None:
        raise ConfigError(f"tool '{name}': bad reference {ref!r}; expected 'package.module:attr'", ref=ref)
    module_name, attr_path = match["module"], match["attr"]
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # importing user code may raise anything; report it as configuration
        raise ConfigError(f"tool '{name}': cannot import '{module_name}' ({ref}): {exc}", ref=ref) from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            message = f"tool '{name}': '{module_name}' has no attribute '{attr_path}' ({ref})"
            raise ConfigError(message, ref=ref) from exc
    if isinstance(obj, Tool):
        return obj if obj.name == name else obj.renamed(name)
    if not callable(obj) or inspect.isclass(obj):
        got = type(obj).__name__
        raise ConfigError(f"tool '{name}': {ref} is not a function or Tool (got {got})", ref=ref)
    try:
        return Tool(obj, name=name)
    except ConfigError as exc:
        raise ConfigError(f"{exc} ({ref})", ref=ref) from exc


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _type_hints(fn: Callable[..., Any], name: str) -> dict[str, Any]:
    for target in (fn, getattr(fn, "__call__", None)):  # noqa: B004 (hints of a callable object)
        if target is None:
            continue
        try:
            return typing.get_type_hints(target, include_extras=True)
        except TypeError:
            continue  # builtins and some callables carry no hints
        except NameError as exc:
            raise ConfigError(f"tool '{name}': cannot resolve its type hints: {exc}") from exc
    return {}


def _first_paragraph(doc: str) -> str:
    return " ".join(doc.strip().split("\n\n", 1)[0].split())


def _arg_docs(doc: str) -> dict[str, str]:
    """Field descriptions from a Google-style ``Args:`` section."""
    out: dict[str, str] = {}
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip().lower() in _ARGS_HEADERS)
    except StopIteration:
        return out
    current: str | None = None
    base_indent: int | None = None
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if base_indent is None:
            base_indent = indent
        if indent < base_indent:
            break
        entry = re.match(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", line.strip())
        if indent == base_indent and entry:
            current = entry.group(1)
            out[current] = entry.group(2).strip()
        elif current is not None:
            out[current] = f"{out[current]} {line.strip()}".strip()
    return out


def _inline_refs(schema: dict[str, Any], tool_name: str) -> dict[str, Any]:
    """Resolve ``$ref`` into ``$defs`` in place of each use; drop titles (noise for the LLM)."""
    defs: dict[str, Any] = schema.get("$defs", {})

    def walk(node: Any, stack: frozenset[str]) -> Any:
        if isinstance(node, list):
            return [walk(item, stack) for item in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        if "$ref" in node:
            ref = node["$ref"]
            key = ref.removeprefix("#/$defs/")
            if key == ref or key not in defs:
                raise ConfigError(f"tool '{tool_name}': unsupported schema reference {ref!r}")
            if key in stack:
                raise ConfigError(f"tool '{tool_name}': recursive argument type '{key}' cannot be inlined")
            out.update(walk(defs[key], stack | {key}))
        for k, v in node.items():
            if k in ("$ref", "$defs", "title"):
                continue
            if k == "properties" and isinstance(v, dict):
                out[k] = {prop: walk(sub, stack) for prop, sub in v.items()}
            elif k in _DATA_KEYWORDS:
                out[k] = v
            else:
                out[k] = walk(v, stack)
        return out

    return walk(schema, frozenset())


def _copy(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node


def _as_text(result: Any) -> str:
    if isinstance(result, str):
        return result
    return pydantic_core.to_json(result, fallback=str).decode("utf-8")
