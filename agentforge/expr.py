"""A small, safe expression language (a subset of Python) for router conditions and the calculator.

Only literals, names bound by the caller, arithmetic, comparisons, boolean logic, subscripts,
``in``, and a short list of pure functions are allowed. There is no attribute access, no calls
to anything else, and no ``eval``: the AST is walked directly.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos, ast.USub: operator.neg, ast.Not: operator.not_,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b, ast.Is: operator.is_, ast.IsNot: operator.is_not,
}
MATH_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs, "round": round, "min": min, "max": max, "sqrt": math.sqrt, "log": math.log,
    "log10": math.log10, "exp": math.exp, "sin": math.sin, "cos": math.cos, "tan": math.tan,
    "floor": math.floor, "ceil": math.ceil, "factorial": math.factorial,
}
STATE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len, "lower": lambda s: str(s).lower(), "upper": lambda s: str(s).upper(),
    "contains": lambda s, sub: str(sub).lower() in str(s).lower(), "int": int, "float": float,
    "str": str, "bool": bool, "abs": abs, "min": min, "max": max,
}
MATH_CONSTANTS = {"pi": math.pi, "e": math.e}
_MAX_POWER = 10_000
_MAX_LEN = 1_000
_MAX_INT_BITS = 100_000  # about 30,000 decimal digits


class ExpressionError(ValueError):
    """The expression is malformed, uses something not allowed, or failed to evaluate."""


def parse(text: str) -> ast.Expression:
    if len(text) > _MAX_LEN:
        raise ExpressionError(f"expression longer than {_MAX_LEN} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"invalid expression {text!r}: {exc.msg}") from None
    return tree


def names_used(text: str) -> set[str]:
    """Free variable names in an expression (function names excluded)."""
    tree = parse(text)
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - called


def evaluate(
    text: str,
    names: Mapping[str, Any],
    functions: Mapping[str, Callable[..., Any]] = STATE_FUNCTIONS,
) -> Any:
    tree = parse(text)
    try:
        return _eval(tree.body, names, functions)
    except ExpressionError:
        raise
    except (ArithmeticError, TypeError, ValueError, KeyError, IndexError) as exc:
        raise ExpressionError(f"{text!r} failed: {type(exc).__name__}: {exc}") from None


def _eval(node: ast.AST, names: Mapping[str, Any], fns: Mapping[str, Callable[..., Any]]) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool | type(None)):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in names:
            return names[node.id]
        if node.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.id]
        raise ExpressionError(f"unknown name '{node.id}'")
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _eval(node.left, names, fns), _eval(node.right, names, fns)
        if isinstance(node.op, ast.Pow) and isinstance(right, int | float):
            if abs(right) > _MAX_POWER:
                raise ExpressionError(f"exponent {right} is too large")
            # Bound the result, not just the exponent: (9**10000)**10000 would run for ages.
            if isinstance(left, int) and left.bit_length() * abs(right) > _MAX_INT_BITS:
                raise ExpressionError("the result would be too large")
        if isinstance(node.op, ast.Mult) and isinstance(left, int) and isinstance(right, int) \
                and left.bit_length() + right.bit_length() > _MAX_INT_BITS:
            raise ExpressionError("the result would be too large")
        if isinstance(node.op, ast.Mult) and isinstance(left, str | list) and isinstance(right, int):
            raise ExpressionError("repeating sequences is not allowed")
        return _BINOPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, names, fns))
    if isinstance(node, ast.BoolOp):
        values = (_eval(v, names, fns) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, names, fns)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _eval(comp, names, fns)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        branch = node.body if _eval(node.test, names, fns) else node.orelse
        return _eval(branch, names, fns)
    if isinstance(node, ast.Subscript):
        return _eval(node.value, names, fns)[_eval(node.slice, names, fns)]
    if isinstance(node, ast.List | ast.Tuple):
        return [_eval(e, names, fns) for e in node.elts]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        fn = fns.get(node.func.id)
        if fn is None:
            raise ExpressionError(f"function '{node.func.id}' is not allowed; allowed: {', '.join(sorted(fns))}")
        return fn(*(_eval(a, names, fns) for a in node.args))
    raise ExpressionError(f"'{ast.unparse(node)}' is not allowed in an expression")
