from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agentforge.errors import ConfigError, ToolError
from agentforge.tools import Tool, ToolContext, ToolRegistry, default_registry, tool
from agentforge.tools.builtins import MAX_FILE_BYTES, calculator


class Point(BaseModel):
    x: float
    y: float


class Tree(BaseModel):
    value: int
    children: list[Tree] = []


@tool
def search(ctx: ToolContext, query: str, limit: int = 5, tags: list[str] | None = None) -> list[str]:
    """Search the notes for a query.

    Longer explanation that the LLM does not need.

    Args:
        query: What to look for.
        limit: How many results
            to return at most.
    """
    return [f"{query}:{i}:{ctx.workspace.name}" for i in range(limit)]


@tool(name="distance", description="Distance between two points.")
def _distance(a: Point, b: Point) -> float:
    return ((a.x - b.x) ** 2 + (a.y - b.y) ** 2) ** 0.5


@tool
def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"boom: {reason}")


def helper_double(n: int) -> int:
    """Double a number."""
    return n * 2


NOT_CALLABLE = 42


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        for k, v in node.items():
            yield k
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    return ToolContext(workspace=workspace)


# --- Tool: schema, validation, calling --------------------------------------------------------------


def test_schema_from_type_hints_excludes_ctx() -> None:
    schema = search.parameters_schema()
    assert schema["type"] == "object"
    assert set(schema["properties"]) == {"query", "limit", "tags"}
    assert schema["required"] == ["query"]
    assert schema["properties"]["query"]["type"] == "string"
    assert schema["properties"]["limit"] == {
        "type": "integer", "default": 5, "description": "How many results to return at most."
    }
    assert schema["properties"]["tags"]["anyOf"][0] == {"type": "array", "items": {"type": "string"}}
    assert schema["additionalProperties"] is False
    assert search.description == "Search the notes for a query."
    assert search.needs_context
    assert "title" not in set(_walk(schema))


def test_nested_models_are_inlined_without_refs() -> None:
    schema = _distance.parameters_schema()
    keys = set(_walk(schema))
    assert "$ref" not in keys and "$defs" not in keys
    assert schema["properties"]["a"]["properties"]["x"]["type"] == "number"
    assert schema["required"] == ["a", "b"]
    assert _distance.name == "distance"
    assert _distance.description == "Distance between two points."


def test_recursive_models_are_rejected() -> None:
    def grow(tree: Tree) -> int:
        return tree.value

    with pytest.raises(ConfigError, match="recursive"):
        Tool(grow)


def test_parameter_names_that_clash_with_pydantic_still_work() -> None:
    def lookup(schema: str, model_name: str = "m") -> str:
        return f"{schema}/{model_name}"

    t = Tool(lookup)
    assert set(t.parameters_schema()["properties"]) == {"schema", "model_name"}
    assert t.call({"schema": "s", "model_name": "x"}) == "s/x"


class Opaque:
    pass


def test_types_without_a_json_schema_are_config_errors() -> None:
    def takes_opaque(thing: Opaque) -> str:
        return "x"

    def takes_callback(fn: Callable[[int], int]) -> int:
        return fn(1)

    with pytest.raises(ConfigError, match="takes_opaque"):
        Tool(takes_opaque)
    with pytest.raises(ConfigError, match="takes_callback"):
        Tool(takes_callback)


def test_varargs_and_bad_names_are_rejected() -> None:
    def spread(*items: int) -> int:
        return sum(items)

    with pytest.raises(ConfigError, match="args"):
        Tool(spread)
    with pytest.raises(ConfigError, match="invalid tool name"):
        Tool(helper_double, name="has space")


async def test_call_validates_injects_ctx_and_returns_json(ctx: ToolContext) -> None:
    text = await search.acall({"query": "cats", "limit": "2"}, ctx)  # "2" is coerced to int
    assert json.loads(text) == ["cats:0:workspace", "cats:1:workspace"]


async def test_bad_args_name_the_tool_and_the_field(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="limit") as info:
        await search.acall({"query": "cats", "limit": "many"}, ctx)
    assert "search" in str(info.value)
    assert info.value.fields == {"tool": "search", "field": "limit"}

    with pytest.raises(ToolError, match="query: Field required"):
        await search.acall({}, ctx)
    with pytest.raises(ToolError, match="colour"):
        await search.acall({"query": "x", "colour": "red"}, ctx)
    with pytest.raises(ToolError, match="JSON object"):
        await search.acall(["cats"], ctx)  # type: ignore[arg-type]


async def test_missing_context_is_a_tool_error() -> None:
    with pytest.raises(ToolError, match="ToolContext"):
        await search.acall({"query": "x"})


async def test_tool_exceptions_become_tool_errors() -> None:
    with pytest.raises(ToolError, match="tool 'explode' failed: RuntimeError: boom: why") as info:
        await explode.acall({"reason": "why"})
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(ToolError, match="boom"):
        explode.call({"reason": "sync"})


async def test_sync_tools_run_in_a_thread_and_async_tools_are_awaited() -> None:
    seen: dict[str, bool] = {}

    def where() -> str:
        seen["sync_in_main_thread"] = threading.current_thread() is threading.main_thread()
        return "sync"

    async def awhere(n: int) -> dict[str, int]:
        seen["async_in_main_thread"] = threading.current_thread() is threading.main_thread()
        return {"n": n}

    assert await Tool(where).acall({}) == "sync"
    assert await Tool(awhere).acall({"n": 3}) == '{"n":3}'
    assert seen == {"sync_in_main_thread": False, "async_in_main_thread": True}


def test_decorated_tool_is_still_callable_directly() -> None:
    assert calculator("1 + 1") == "2"


# --- calculator -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2 + 3 * 4", "14"),
        ("(2 + 3) * 4", "20"),
        ("2 ** 10", "1024"),
        ("2 ** 3 ** 2", "512"),
        ("-3 ** 2", "-9"),
        ("10 / 4", "2.5"),
        ("10 / 2", "5"),
        ("7 // 2", "3"),
        ("7 % 3", "1"),
        ("0.1 + 0.2", "0.3"),
        ("sqrt(16)", "4"),
        ("sqrt(2)", "1.41421356237"),
        ("max(3, 9, 4) - abs(-2)", "7"),
        ("round(pi, 2)", "3.14"),
        ("factorial(5)", "120"),
        ("1e-12 * 3", "3e-12"),
    ],
)
async def test_calculator(expression: str, expected: str) -> None:
    assert await calculator.acall({"expression": expression}) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os')",
        "(1).__class__",
        "().__class__.__bases__[0].__subclasses__()",
        "open('/etc/passwd')",
        "1 / 0",
        "2 +",
        "factorial(100000)",
        "'abc'",
    ],
)
async def test_calculator_refuses(expression: str) -> None:
    with pytest.raises(ToolError, match="calculator"):
        await calculator.acall({"expression": expression})


# --- python, read_file, write_file ----------------------------------------------------------------


async def test_python_tool_runs_in_the_workspace(ctx: ToolContext) -> None:
    registry = default_registry()
    reply = "```python\nopen('made.txt', 'w').write('from code')\nprint(6 * 7)\n```"
    assert (await registry.get("python").acall({"code": reply}, ctx)).strip() == "42"
    assert await registry.get("read_file").acall({"path": "made.txt"}, ctx) == "from code"


async def test_python_tool_reports_failures(ctx: ToolContext) -> None:
    code = "print('partial')\nraise ValueError('bad')"
    out = await default_registry().get("python").acall({"code": code}, ctx)
    assert "partial" in out
    assert "ValueError: bad" in out
    assert "[exit code 1]" in out


async def test_write_then_read(ctx: ToolContext) -> None:
    registry = default_registry()
    msg = await registry.get("write_file").acall({"path": "notes/a.txt", "content": "héllo"}, ctx)
    assert "notes/a.txt" in msg
    assert (ctx.workspace / "notes" / "a.txt").read_text(encoding="utf-8") == "héllo"
    assert await registry.get("read_file").acall({"path": "notes/../notes/a.txt"}, ctx) == "héllo"
    inside = str(ctx.workspace / "notes" / "a.txt")
    assert await registry.get("read_file").acall({"path": inside}, ctx) == "héllo"


@pytest.mark.parametrize("path", ["../outside.txt", "notes/../../outside.txt", "/etc/passwd", "escape/x.txt"])
async def test_file_tools_stay_in_the_workspace(ctx: ToolContext, path: str) -> None:
    outside = ctx.workspace.parent
    (outside / "outside.txt").write_text("secret")
    (ctx.workspace / "escape").symlink_to(outside, target_is_directory=True)
    registry = default_registry()
    with pytest.raises(ToolError, match="outside the workspace"):
        await registry.get("read_file").acall({"path": path}, ctx)
    with pytest.raises(ToolError, match="outside the workspace"):
        await registry.get("write_file").acall({"path": path, "content": "pwned"}, ctx)
    assert (outside / "outside.txt").read_text() == "secret"
    assert not (outside / "x.txt").exists()


async def test_file_size_caps(ctx: ToolContext) -> None:
    registry = default_registry()
    with pytest.raises(ToolError, match="limit"):
        too_big = "x" * (MAX_FILE_BYTES + 1)
        await registry.get("write_file").acall({"path": "big.txt", "content": too_big}, ctx)
    (ctx.workspace / "big.txt").write_text("y" * (MAX_FILE_BYTES + 10))
    text = await registry.get("read_file").acall({"path": "big.txt"}, ctx)
    assert text.startswith("y" * MAX_FILE_BYTES)
    assert "truncated" in text
    with pytest.raises(ToolError, match="no file"):
        await registry.get("read_file").acall({"path": "missing.txt"}, ctx)


# --- registry -------------------------------------------------------------------------------------


def test_default_registry_has_the_builtins() -> None:
    registry = default_registry()
    assert registry.names() == ["calculator", "python", "read_file", "write_file"]
    assert "python" in registry and "shell" not in registry
    assert not registry.get("python").parameters_schema()["properties"].keys() - {"code"}


def test_unknown_tool_suggests_the_closest() -> None:
    with pytest.raises(ToolError, match="did you mean 'calculator'"):
        default_registry().get("calculater")
    with pytest.raises(ToolError, match="unknown tool 'zzz'") as info:
        default_registry().get("zzz")
    assert "did you mean" not in str(info.value)


def test_register_refuses_duplicates() -> None:
    registry = ToolRegistry([search])
    with pytest.raises(ConfigError, match="already registered"):
        registry.register(search)
    registry.register(helper_double)
    assert registry.names() == ["helper_double", "search"]


async def test_with_refs_resolves_module_attr() -> None:
    base = default_registry()
    registry = base.with_refs(
        {"root": "math:sqrt", "double": f"{__name__}:helper_double", "fail": f"{__name__}:explode"}
    )
    assert "root" not in base  # the original registry is untouched
    assert registry.names() == ["calculator", "double", "fail", "python", "read_file", "root", "write_file"]
    assert await registry.get("root").acall({"x": 16}) == "4.0"  # a builtin with a positional-only parameter
    assert await registry.get("double").acall({"n": 21}) == "42"
    assert registry.get("double").description == "Double a number."
    assert registry.get("fail").name == "fail"  # a Tool takes the name the workflow gives it


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("agentforge_no_such_module_xyz:f", "cannot import"),
        ("math:no_such_function", "has no attribute"),
        (f"{__name__}:NOT_CALLABLE", "not a function"),
        (f"{__name__}:Point", "not a function"),
        ("math.sqrt", "bad reference"),
        ("../evil:f", "bad reference"),
        ("os:system; rm", "bad reference"),
    ],
)
def test_with_refs_reports_bad_refs(ref: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        default_registry().with_refs({"custom": ref})
    assert ref in str(info.value)
    assert info.value.fields["ref"] == ref


def test_with_refs_refuses_to_shadow_a_builtin() -> None:
    with pytest.raises(ConfigError, match="clashes"):
        default_registry().with_refs({"calculator": "math:sqrt"})


def test_importing_tools_stays_light() -> None:
    code = (
        "import sys, agentforge.tools\n"
        "heavy = {'litellm', 'langgraph', 'chromadb', 'dspy', 'textgrad', 'agentforge.tools.builtins'}\n"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
