"""Field types of workflow state: parsing the YAML type expression, checking, coercing.

A type is written as ``str``, ``int``, ``float``, ``bool``, ``list``, ``list[str]``, ``dict``, ``any``,
or as an inline JSON-schema mapping (``{type: object, properties: ...}``). Every type has a JSON
schema, which is what structured LLM output is constrained with.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

_SCALARS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "list": {"type": "array"},
    "dict": {"type": "object"},
    "any": {},
}
_LIST_RE = re.compile(r"^list\[(\w+)\]$")
# Every type name parse_type accepts (inline JSON schemas aside): the scalars and list[T] of each.
TYPE_NAMES = (*_SCALARS, *(f"list[{item}]" for item in _SCALARS))


@dataclass(frozen=True)
class FieldType:
    """A parsed type expression. ``name`` is the canonical spelling; ``schema`` its JSON schema."""

    name: str
    schema_json: str  # JSON text, so the dataclass stays hashable

    @property
    def schema(self) -> dict[str, Any]:
        return json.loads(self.schema_json)

    @cached_property  # read on every node call; parsed types are shared (parse_type caches names)
    def base(self) -> str:
        """The outer kind: str, int, float, bool, list, dict, any or object (a JSON schema)."""
        if self.name.startswith("list"):
            return "list"
        return self.name if self.name in _SCALARS else "object"

    @property
    def label(self) -> str:
        """A readable name: ``str``, ``list[int]``, or ``schema(string enum)`` for inline schemas."""
        if not self.name.startswith("schema:"):
            return self.name
        schema = self.schema
        words = [str(schema.get("type", "any"))]
        if "enum" in schema:
            words.append("enum")
        return f"schema({' '.join(words)})"

    def __str__(self) -> str:
        return self.label


def parse_type(expr: Any) -> FieldType:
    """Parse a YAML type expression; raise ``ValueError`` with a suggestion when unknown."""
    if isinstance(expr, str):
        return _parse_name(expr)
    return _parse(expr)


@lru_cache(maxsize=1024)
def _parse_name(expr: str) -> FieldType:
    return _parse(expr)


def _parse(expr: Any) -> FieldType:
    if isinstance(expr, dict):
        if not expr:
            raise ValueError("an inline JSON schema must not be empty")
        kind = expr.get("type")
        if kind is not None and kind not in ("object", "array", "string", "integer", "number", "boolean"):
            raise ValueError(f"JSON schema type {kind!r} is not a JSON-schema type")
        text = json.dumps(expr, sort_keys=True)
        return FieldType(name=f"schema:{text}", schema_json=text)
    if not isinstance(expr, str):
        raise ValueError(f"a type must be a name like 'str' or a JSON-schema mapping, not {expr!r}")
    name = expr.strip()
    if name in _SCALARS:
        return FieldType(name=name, schema_json=json.dumps(_SCALARS[name], sort_keys=True))
    match = _LIST_RE.match(name)
    if match and match.group(1) in _SCALARS:
        item = _SCALARS[match.group(1)]
        return FieldType(name=name, schema_json=json.dumps({"type": "array", "items": item}, sort_keys=True))
    from difflib import get_close_matches

    close = get_close_matches(name, TYPE_NAMES, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f"; use one of {', '.join(TYPE_NAMES)}"
    raise ValueError(f"unknown type '{name}'{hint}")


_BASE_OF_SCHEMA = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}
ANY = parse_type("any")
STR = parse_type("str")


def is_assignable(source: FieldType, target: FieldType) -> bool:
    """Whether a value typed ``source`` may flow into a port typed ``target``."""
    if source == target or target.base == "any" or source.base == "any":
        return True
    if source.base == "int" and target.base == "float":
        return True
    if source.base == "list" and target.name == "list":
        return True
    if source.base == "object" or target.base == "object":
        # An inline schema on either side: the outer JSON types must match, and a schema without
        # a type matches anything (e.g. a string enum flows into str, any object schema into dict).
        want = target.schema.get("type")
        got = source.schema.get("type")
        return want is None or got is None or want == got
    return False


def is_type_name(name: str) -> bool:
    """Whether ``name`` is a type name (as opposed to a JSON-schema type word such as ``string``)."""
    try:
        _parse_name(name)
    except ValueError:
        return False
    return True


def zero_value(ftype: FieldType) -> Any:
    """The simplest value of ``ftype``: "" 0 0.0 false [] {}, None for ``any``; raise ``ValueError`` if none fits.

    An inline schema gets the zero of its JSON type, with every required property filled in. An enum
    has a zero value only if it lists that zero (an arbitrary member would read as a real answer).
    """
    if ftype.base != "object":
        return copy.deepcopy(_ZERO_OF_BASE[ftype.base])
    value = _schema_zero(ftype.schema, "$")
    _check_schema(value, ftype.schema, path="$")
    return value


_ZERO_OF_BASE: dict[str, Any] = {"str": "", "int": 0, "float": 0.0, "bool": False, "list": [], "dict": {},
                                 "any": None}
_ZERO_OF_SCHEMA: dict[str, Any] = {"string": "", "integer": 0, "number": 0.0, "boolean": False, "array": [],
                                   "object": {}}


def _schema_zero(schema: dict[str, Any], path: str) -> Any:
    kind = schema.get("type")
    value = copy.deepcopy(_ZERO_OF_SCHEMA.get(kind)) if isinstance(kind, str) else None
    if kind == "object":
        properties = schema.get("properties", {})
        value = {key: _schema_zero(properties.get(key, {}), f"{path}.{key}") for key in schema.get("required", [])}
    if "enum" in schema and value not in schema["enum"]:
        raise ValueError(f"{path}: no zero value fits the enum {schema['enum']}")
    return value


def coerce(value: Any, ftype: FieldType) -> Any:
    """Convert a value (often text from an LLM or a subprocess) to ``ftype``; raise ``ValueError``."""
    base = ftype.base
    if base == "any":
        return value
    if base == "str":
        if isinstance(value, str):
            return value
        if value is None:  # "None" would read as text that was written; null is no string
            raise ValueError("expected a str, got null")
        if isinstance(value, dict | list):
            return json.dumps(value)
        return str(value)
    if base == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "1"):
            return True
        if text in ("false", "no", "0"):
            return False
        raise ValueError(f"expected a bool, got {value!r}")
    if base == "int":
        if isinstance(value, bool):
            raise ValueError(f"expected an int, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        text = _number_text(value)
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"expected an int, got {value!r}") from None
        if not number.is_integer():
            raise ValueError(f"expected an int, got {value!r}")
        return int(number)
    if base == "float":
        if isinstance(value, bool):
            raise ValueError(f"expected a float, got {value!r}")
        if isinstance(value, int | float):
            return float(value)
        try:
            return float(_number_text(value))
        except ValueError:
            raise ValueError(f"expected a float, got {value!r}") from None
    if base == "object" and ftype.schema.get("type") in _BASE_OF_SCHEMA:
        # An inline schema over a scalar: coerce like the scalar, then check enum and the rest.
        value = coerce(value, parse_type(_BASE_OF_SCHEMA[ftype.schema["type"]]))
        _check_schema(value, ftype.schema, path="$")
        return value
    if base in ("list", "dict", "object"):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"expected JSON for a {ftype.label}, got {value[:80]!r}") from exc
        _check_schema(value, ftype.schema, path="$")
        return value
    raise ValueError(f"cannot coerce to {ftype.label}")


def _number_text(value: Any) -> str:
    text = str(value).strip().replace(",", "")
    # Tolerate a trailing period or surrounding text such as "x = 42." that small models produce.
    match = re.fullmatch(r"[^\d\-+]*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\.?\s*", text)
    return match.group(1) if match else text


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def _check_schema(value: Any, schema: dict[str, Any], path: str) -> None:
    """A small JSON-schema check: type, properties, required, items, enum. Enough for ports."""
    kind = schema.get("type")
    if isinstance(kind, str):
        allowed = _JSON_TYPES.get(kind, (object,))
        bad_bool = kind in ("integer", "number") and isinstance(value, bool)
        if not isinstance(value, allowed) or bad_bool:
            raise ValueError(f"{path}: expected {kind}, got {type(value).__name__}")
    if "enum" in schema and value not in schema["enum"]:
        raise ValueError(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                raise ValueError(f"{path}: missing required key '{key}'")
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                _check_schema(value[key], sub, f"{path}.{key}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _check_schema(item, schema["items"], f"{path}[{i}]")


def object_schema(fields: dict[str, FieldType]) -> dict[str, Any]:
    """The JSON schema of an object with one required property per field."""
    return {
        "type": "object",
        "properties": {name: ftype.schema for name, ftype in fields.items()},
        "required": list(fields),
        "additionalProperties": False,
    }
