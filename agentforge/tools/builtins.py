"""The built-in tools: calculator, python (sandboxed), read_file and write_file (workspace only)."""

from __future__ import annotations

import math
import os
from pathlib import Path

from agentforge.expr import MATH_CONSTANTS, MATH_FUNCTIONS, evaluate
from agentforge.sandbox import arun_python, extract_code
from agentforge.tools.base import Tool, ToolContext, tool

__all__ = ["BUILTINS", "calculator", "python", "read_file", "write_file"]

PYTHON_TIMEOUT_S = 10.0
MAX_FILE_BYTES = 1_000_000
_MAX_FACTORIAL = 1_000  # math.factorial of a huge number would hold a thread for minutes
_SIGNIFICANT_DIGITS = 12


def _factorial(n: int) -> int:
    if isinstance(n, int) and n > _MAX_FACTORIAL:
        raise ValueError(f"factorial argument {n} is too large (limit {_MAX_FACTORIAL})")
    return math.factorial(n)


_CALC_FUNCTIONS = {**MATH_FUNCTIONS, "factorial": _factorial}


def _format_number(value: object) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return repr(value)
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(float(f"{value:.{_SIGNIFICANT_DIGITS}g}"))
    raise ValueError(f"the expression did not give a number (got {type(value).__name__})")


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression and return the number.

    Supports + - * / // % **, parentheses, pi, e, and abs, round, min, max, sqrt, log, log10, exp, sin,
    cos, tan, floor, ceil, factorial.

    Args:
        expression: The arithmetic expression, for example "(3 + 4) * sqrt(16) / 2".
    """
    return _format_number(evaluate(expression, MATH_CONSTANTS, _CALC_FUNCTIONS))


@tool
async def python(code: str, ctx: ToolContext) -> str:
    """Run Python code in a sandbox and return what it prints.

    The code runs in a fresh interpreter with the workspace folder as the current directory, no network
    and a 10 second time limit. Print the values you need: only printed output comes back.

    Args:
        code: The Python source to run.
    """
    result = await arun_python(extract_code(code), workdir=ctx.workspace, timeout=PYTHON_TIMEOUT_S)
    if result.ok:
        return result.stdout if result.stdout.strip() else "(no output: use print() to show results)"
    parts = [result.stdout.rstrip(), result.stderr.strip()]
    if not result.timed_out:
        parts.append(f"[exit code {result.returncode}]")
    return "\n".join(p for p in parts if p)


def _confine(workspace: Path, path: str) -> Path:
    """``path`` resolved inside the workspace; anything that would leave it is refused."""
    if not path or "\x00" in path:
        raise ValueError(f"invalid path {path!r}")
    root = workspace.resolve()
    target = (root / path).resolve()  # an absolute `path` replaces root; symlinks are followed
    if not target.is_relative_to(root):
        raise PermissionError(f"path '{path}' is outside the workspace")
    return target


@tool
def read_file(path: str, ctx: ToolContext) -> str:
    """Read a text file from the workspace folder.

    Args:
        path: The file's path, relative to the workspace.
    """
    target = _confine(ctx.workspace, path)
    if not target.is_file():
        raise FileNotFoundError(f"no file '{path}' in the workspace")
    with target.open("rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    text = data[:MAX_FILE_BYTES].decode("utf-8", errors="replace")
    if len(data) > MAX_FILE_BYTES:
        text += f"\n... [truncated: showing the first {MAX_FILE_BYTES} bytes]"
    return text


@tool
def write_file(path: str, content: str, ctx: ToolContext) -> str:
    """Write a text file in the workspace folder, replacing it if it exists.

    Args:
        path: The file's path, relative to the workspace; missing folders are created.
        content: The text to write.
    """
    data = content.encode("utf-8")
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"content is {len(data)} bytes; the limit is {MAX_FILE_BYTES}")
    target = _confine(ctx.workspace, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # O_NOFOLLOW: a symlink planted after the check above is refused rather than followed.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return f"wrote {len(data)} bytes to {target.relative_to(ctx.workspace.resolve())}"


BUILTINS: tuple[Tool, ...] = (calculator, python, read_file, write_file)
