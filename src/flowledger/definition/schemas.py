"""Output types of steps as JSON Schemas, and walking a reference path through them.

An object schema that lists ``properties`` is closed unless it says
``additionalProperties``: pydantic output models do not say it, and a reference
to a field they lack is a typo worth reporting before the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowledger.definition.strictness import checking_new
from flowledger.templates import contains_template

Schema = Mapping[str, Any]

#: The envelope every ``steps.<id>`` exposes (SPEC §3), plus ``error`` and ``attempt``.
STEP_ENVELOPE_FIELDS = (
    "nodeId",
    "nodeName",
    "status",
    "output",
    "executedAt",
    "durationMs",
    "error",
    "attempt",
)
LOOP_FIELDS = ("loopName", "items", "index", "item")
EXECUTION_FIELDS = ("id", "correlationId", "workflowName", "workflowVersion", "startedAt")


def schema_of_literal(value: Any) -> Schema | None:
    """The type a ``sys.transform`` value renders to, as far as the definition shows it."""
    if isinstance(value, str):
        if not contains_template(value):
            return {"type": "string"}
        return None if _is_single_expression(value) else {"type": "string"}
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int | float):
        return {"type": "number"}
    if value is None:
        return {"type": "null"}
    if isinstance(value, list):
        return {"type": "array"}
    if isinstance(value, dict):
        props = {k: schema_of_literal(v) or {} for k, v in value.items()}
        return {"type": "object", "properties": props}
    return None


def _is_single_expression(text: str) -> bool:
    """True when ``text`` is one ``{{ expr }}`` (so its type is only known at run time)."""
    stripped = text.strip()
    return stripped.startswith("{{") and stripped.endswith("}}") and stripped.count("{{") == 1


@dataclass(frozen=True)
class Walk:
    ok: bool
    schema: Schema | None = None  # None: anything goes from here on
    problem: str = ""


def walk(root: Schema | None, segments: tuple[str | int, ...], prefix: str) -> Walk:
    """Follow ``segments`` through ``root``; report the first one the schema cannot have."""
    schema = root
    where = prefix
    for segment in segments:
        if schema is None:
            return Walk(True, None)
        schema = _deref(schema, root)
        step = _child(schema, segment, root)
        if step is _MISSING:
            return Walk(False, None, _missing_message(where, schema, segment, root))
        if not isinstance(step, Mapping):  # _UNKNOWN: anything goes from here on
            return Walk(True, None)
        schema = step
        where = f"{where}[{segment}]" if isinstance(segment, int) else f"{where}.{segment}"
    return Walk(True, schema)


_UNKNOWN = object()
_MISSING = object()


def _deref(schema: Schema, root: Schema | None) -> Schema:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/") and root is not None:
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, Mapping) else None
        if isinstance(target, Mapping):
            return target
    return schema


def is_decimal_text(schema: Schema) -> bool:
    """A Decimal stored as text (an output model's ``format: decimal``), or one that may
    be null (``Optional[Decimal]``)."""
    if schema.get("type") == "string" and schema.get("format") == "decimal":
        return True
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list):
        return any(isinstance(o, Mapping) and is_decimal_text(o) for o in options)
    return False


def holds_decimal(schema: Schema | None) -> bool:
    """Whether a Decimal stored as text is anywhere in ``schema`` (one pass over it)."""
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            if node.get("format") == "decimal":
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def is_number(schema: Schema) -> bool:
    """A number (an integer too), or one that may be null."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        return bool(kinds) and all(k in ("integer", "number") for k in kinds)
    if kind in ("integer", "number"):
        return True
    options = schema.get("anyOf") or schema.get("oneOf")
    if not isinstance(options, list):
        return False
    present = [o for o in options if isinstance(o, Mapping) and o.get("type") != "null"]
    return bool(present) and all(is_number(o) for o in present)


#: JSON Schema's types as kinds of values (an integer is a number).
_KINDS = {
    "string": "string",
    "integer": "number",
    "number": "number",
    "boolean": "boolean",
    "array": "array",
    "object": "object",
    "null": "null",
}


def json_kinds(schema: Schema | None) -> frozenset[str] | None:
    """The kinds of value (``string``, ``number``, ``boolean``, ``array``, ``object``,
    ``null``) ``schema`` allows, or None when it does not say (then anything may come)."""
    if schema is None:
        return None
    kind = schema.get("type")
    if isinstance(kind, str):
        return frozenset((_KINDS[kind],)) if kind in _KINDS else None
    if isinstance(kind, list):
        kinds = [_KINDS.get(k) for k in kind if isinstance(k, str)]
        if not kinds or len(kinds) != len(kind) or None in kinds:
            return None
        return frozenset(k for k in kinds if k is not None)
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list) and options:
        found: set[str] = set()
        for option in options:
            some = json_kinds(option) if isinstance(option, Mapping) else None
            if some is None:
                return None
            found |= some
        return frozenset(found)
    values = [schema["const"]] if "const" in schema else schema.get("enum")
    if isinstance(values, list) and values:
        return frozenset(kind_of_value(v) for v in values)
    return None


def kind_of_value(value: Any) -> str:
    """The kind of a JSON value, as :func:`json_kinds` names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def describe(schema: Schema) -> str:
    """What a value of ``schema`` is, in words: "a string", "a string or null"."""
    return _describe(schema, None)


def _options(schema: Schema, root: Schema | None) -> list[Schema] | None:
    """The alternatives of an ``anyOf``/``oneOf`` (a Union, an Optional), else None."""
    options = schema.get("anyOf") or schema.get("oneOf")
    if not isinstance(options, list):
        return None
    return [_deref(o, root) for o in options if isinstance(o, Mapping)]


def _child(schema: Schema, segment: str | int, root: Schema | None) -> object:
    options = _options(schema, root)
    if options is not None:
        found = [_child(o, segment, root) for o in options]
        usable = [f for f in found if f is not _MISSING]
        if not usable:
            return _MISSING
        if len(usable) == 1:
            return usable[0]
        if not checking_new() or not all(isinstance(f, Mapping) for f in usable):
            return _UNKNOWN  # a stored definition: what it was checked with when pushed
        # Several alternatives have it (Union[Card, Bank] both with 'last4'): the
        # path goes on in any of them.
        return {"anyOf": usable}
    kind = schema.get("type")
    props = schema.get("properties")
    if isinstance(segment, int):
        if kind == "array" or "items" in schema:
            items = schema.get("items")
            return items if isinstance(items, Mapping) else _UNKNOWN
        if kind in ("object", "string", "number", "integer", "boolean", "null"):
            return _MISSING
        return _UNKNOWN
    if isinstance(props, Mapping) and segment in props:
        return props[segment]
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        return extra
    if extra is True:
        return _UNKNOWN
    if isinstance(props, Mapping) or extra is False:
        return _MISSING
    if kind in ("array", "string", "number", "integer", "boolean", "null"):
        return _MISSING
    return _UNKNOWN


def _missing_message(where: str, schema: Schema, segment: str | int, root: Schema | None) -> str:
    if isinstance(segment, int):
        return f"{where} is {_describe(schema, root)}, not a list, so it has no item [{segment}]"
    fields = _fields(schema, root)
    if fields is not None:
        import difflib

        close = difflib.get_close_matches(segment, sorted(fields), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        listed = ", ".join(sorted(fields)) or "none"
        return f"{where} has no field '{segment}' (its fields: {listed}){hint}"
    return f"{where} is {_describe(schema, root)}, so it has no field '{segment}'"


def _fields(schema: Schema, root: Schema | None) -> set[str] | None:
    """The field names an object schema lists; through a Union or an Optional, those of
    every alternative that lists some. None when no alternative is such an object."""
    options = _options(schema, root)
    if options is None:
        props = schema.get("properties")
        return set(props) if isinstance(props, Mapping) else None
    found = [f for f in (_fields(o, root) for o in options) if f is not None]
    return set().union(*found) if found else None


def _describe(schema: Schema, root: Schema | None) -> str:
    """What a value of ``schema`` is, in words: "a string", "a string or null"."""
    options = _options(schema, root)
    kind = schema.get("type")
    if options is None and isinstance(kind, list):  # type: [string, "null"]
        return " or ".join("null" if k == "null" else _a(k) for k in kind)
    if options is None:
        return _a(kind)
    names: list[str] = []
    for option in options:
        name = "null" if option.get("type") == "null" else _describe(option, root)
        if name not in names:
            names.append(name)
    return " or ".join(names)


def _a(kind: object) -> str:
    names = {
        "array": "a list",
        "string": "a string",
        "number": "a number",
        "integer": "an integer",
        "boolean": "a boolean",
        "null": "always null",
        "object": "an object",
    }
    return names.get(str(kind), "not an object")
