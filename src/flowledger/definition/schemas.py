"""Output types of steps as JSON Schemas, and walking a reference path through them.

An object schema that lists ``properties`` is closed unless it says
``additionalProperties``: pydantic output models do not say it, and a reference
to a field they lack is a typo worth reporting before the run.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, PlainValidator, WrapValidator

from flowledger.definition.strictness import checking_new
from flowledger.durations import Duration
from flowledger.numbers import NumbersNotBooleans, boolean_refusal
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
#: ``loop.<id>`` of a ``sys.sub_workflow`` with items, in its child input.
FRAME_FIELDS = ("loopName", "items", "index", "item")
#: ``loop.<id>`` of a ``sys.loop``: ``previous`` holds the iteration before's outputs.
LOOP_FIELDS = (*FRAME_FIELDS, "previous")
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


# -- what an input field takes --------------------------------------------------------------


@dataclass(frozen=True)
class Takes:
    """The kinds of value (as :func:`json_kinds` names them) an input field's validator
    may accept, and what it takes in words ("a list")."""

    kinds: frozenset[str]
    words: str


@functools.cache
def fields_taking(model: type[BaseModel]) -> Mapping[str, Takes]:
    """The fields of an input model (by the names documents use, and by attribute when
    the model takes those too) whose validator surely refuses some kinds of value: a
    list refuses a number, a number a list (text may hold one: it is accepted). A field
    whose type or validators say less than that (``Any``, a validator that runs before
    the type's, a type not listed here) is left out: anything may pass it. Cached per
    model: most have no such field, and a definition asks once per step."""
    if _parses(model):
        return {}
    decorators = model.__pydantic_decorators__
    parsed: set[str] = set()  # fields a validator of the model sees before their type
    for decorator in decorators.field_validators.values():
        # NumbersNotBooleans' own refuses booleans for numbers only: see below.
        if decorator.info.mode != "after" and _function(decorator.func) is not _NO_BOOLEANS:
            parsed.update(decorator.info.fields)
    if "*" in parsed:
        return {}
    by_name = bool(model.model_config.get("populate_by_name"))
    by_name = by_name or bool(model.model_config.get("validate_by_name"))
    found: dict[str, Takes] = {}
    for attribute, field in model.model_fields.items():
        if attribute in parsed:
            continue
        annotation: Any = field.annotation
        if field.metadata:
            annotation = Annotated[annotation, *field.metadata]
        takes = _takes(annotation, bool(model.model_config.get("coerce_numbers_to_str")))
        if takes is None:
            continue
        kinds, words = takes
        if "boolean" in kinds and boolean_refusal(model, attribute, True) is not None:
            kinds = kinds - {"boolean"}  # NumbersNotBooleans: ``true`` is not a number
        found[field.alias or attribute] = Takes(kinds, " or ".join(words) or "null")
        if by_name:
            found[attribute] = found[field.alias or attribute]
    return found


def _function(method: Any) -> Any:
    return getattr(method, "__func__", method)


_NO_BOOLEANS = _function(
    NumbersNotBooleans.__pydantic_decorators__.field_validators["_no_booleans_for_numbers"].func
)
_SEQUENCES = (list, tuple, set, frozenset, Sequence, AbstractSet)
_VALIDATORS = (BeforeValidator, PlainValidator, WrapValidator)
_Takes = tuple[frozenset[str], tuple[str, ...]]


def _takes(annotation: Any, numbers_as_text: bool) -> _Takes | None:
    """The kinds ``annotation`` accepts in pydantic's lax mode, and in words; None when
    it is not known (then anything may pass)."""
    if annotation is None or annotation is type(None):
        return frozenset(("null",)), ()
    if annotation == Duration:  # parsed from text ('30s') or a number of seconds
        return frozenset(("string", "number")), ("a duration ('30s', or a number of seconds)",)
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is Annotated:
        if any(isinstance(m, _VALIDATORS) for m in annotation.__metadata__):
            return None
        return _takes(arguments[0], numbers_as_text)
    if origin in (typing.Union, types.UnionType):
        kinds: set[str] = set()
        words: list[str] = []
        for argument in arguments:
            part = _takes(argument, numbers_as_text)
            if part is None:
                return None
            kinds |= part[0]
            words += [w for w in part[1] if w not in words]
        return frozenset(kinds), tuple(words)
    if annotation in _SEQUENCES or origin in _SEQUENCES:
        return frozenset(("array",)), ("a list",)
    if annotation is dict or origin in (dict, Mapping) or annotation is Mapping:
        return frozenset(("object",)), ("an object",)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        # A RootModel takes what its root does (pydantic.root_model is not imported for
        # this: it costs 27M instructions at start).
        if getattr(annotation, "__pydantic_root_model__", False) or _parses(annotation):
            return None
        return frozenset(("object",)), ("an object",)
    if annotation is bool:  # also 0 and 1, "true", "yes"
        return frozenset(("boolean", "number", "string")), ("true or false",)
    if annotation is int or annotation is float:  # also numbers as text ("5")
        return frozenset(("number", "string", "boolean")), ("a number",)
    if annotation is str:
        kinds_of_text = ("string", "number") if numbers_as_text else ("string",)
        return frozenset(kinds_of_text), ("text",)
    return None


def _parses(model: type[BaseModel]) -> bool:
    """Whether a model runs a validator of its own before its fields' types (it may then
    take text, or a list)."""
    decorators = model.__pydantic_decorators__
    return any(d.info.mode in ("before", "wrap") for d in decorators.model_validators.values())
