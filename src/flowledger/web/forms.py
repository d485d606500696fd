"""Forms generated from a JSON Schema (a waiting step's ``schema``, a workflow's
``input_schema``), and the submitted form read back as JSON.

Only the shape is read here (which field, which type); whether the data is valid is
the application's to say (the same schema, checked again on the server), so a browser
that skips the form's hints still gets a precise error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flowledger.app.inputs import parse_json
from flowledger.errors import FlowledgerError, InputError, InvalidInputError, shown
from flowledger.types import FieldPath

#: The field holding a whole JSON document, for schemas that are not flat objects.
JSON_FIELD = "__json__"
SIMPLE = {"string", "integer", "number", "boolean"}


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    kind: str  # string | integer | number | boolean | enum | json
    required: bool
    default: str = ""
    options: list[str] = field(default_factory=list)
    description: str = ""


def fields_of(schema: Any) -> list[FormField]:
    """One field per property of an object schema; else a single JSON field."""
    if not isinstance(schema, Mapping):
        return [FormField(JSON_FIELD, "Data (JSON)", "json", True, "{}")]
    properties = schema.get("properties")
    if schema.get("type", "object") != "object" or not isinstance(properties, Mapping):
        return [FormField(JSON_FIELD, "Data (JSON)", "json", True, "{}")]
    required = set(schema.get("required") or [])
    found = []
    for name, spec in properties.items():
        spec = spec if isinstance(spec, Mapping) else {}
        kind = _kind(spec.get("type"))
        options = [_text(v) for v in spec.get("enum") or []]
        if options:
            kind = "enum"
        default = _text(spec["default"]) if "default" in spec else ""
        found.append(
            FormField(
                name=str(name),
                label=str(spec.get("title") or name),
                kind=str(kind),
                required=name in required,
                default=default,
                options=options,
                description=str(spec.get("description") or ""),
            )
        )
    return found


def _kind(declared: Any) -> str:
    """The field for a property's ``type``: a simple type, also when it may be null
    (``[string, "null"]``); anything else (several types, none, not a name) is JSON."""
    if isinstance(declared, list):
        named = [t for t in declared if t != "null"]
        declared = named[0] if len(named) == 1 else None
    return declared if isinstance(declared, str) and declared in SIMPLE else "json"


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def read_form(schema: Any, form: Mapping[str, list[str]]) -> dict[str, Any]:
    """The JSON object a form submitted; blank optional fields are left out.
    InvalidInputError naming the field when a value is not of its type."""
    fields = fields_of(schema)
    if len(fields) == 1 and fields[0].name == JSON_FIELD:
        raw = (form.get(JSON_FIELD) or ["{}"])[0]
        value = _json(raw or "{}", "what you entered", ())
        if not isinstance(value, dict):
            raise InvalidInputError("give a JSON object")
        return value
    data: dict[str, Any] = {}
    enum_values = _enum_values(schema)
    for item in fields:
        raw = (form.get(item.name) or [""])[0]
        if raw == "":
            continue
        data[item.name] = _convert(item, raw, enum_values.get(item.name, {}))
    return data


def error_field(exc: FlowledgerError, root: str) -> FieldPath:
    """The form field an error is about, to mark it: the field the form could not read,
    or the first field the schema refused (its path under ``root``: ``input``, ``data``)."""
    if not isinstance(exc, InvalidInputError):
        return ()
    if exc.field_path:
        return exc.field_path
    path = exc.problems[0][0]
    return path[1:] if path[:1] == (root,) else ()


def _enum_values(schema: Any) -> dict[str, dict[str, Any]]:
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    found: dict[str, dict[str, Any]] = {}
    for name, spec in (properties or {}).items():
        if isinstance(spec, Mapping) and spec.get("enum"):
            found[name] = {_text(v): v for v in spec["enum"]}
    return found


def _convert(item: FormField, raw: str, enum: Mapping[str, Any]) -> Any:
    try:
        if item.kind == "enum":
            return enum.get(raw, raw)
        if item.kind == "integer":
            return int(raw)
        if item.kind == "number":
            return float(raw)
        if item.kind == "boolean":
            if raw not in ("true", "false"):
                raise ValueError("choose true or false")
            return raw == "true"
        if item.kind == "json":
            return _json(raw, "the value", (item.name,))
    except ValueError as exc:
        # The error's field path names the field: the message need not say it again.
        message = str(exc) if item.kind == "boolean" else f"{raw!r} is not a valid {item.kind}"
        raise InvalidInputError(message, (item.name,)) from None
    return raw


def _json(raw: str, what: str, field: tuple[str, ...]) -> Any:
    """A JSON field's value by the rules of every JSON input (app.inputs: no NaN, no key
    twice in one object, bounded depth), refused as an error on ``field``."""
    try:
        return parse_json(raw, what)
    except InputError as exc:
        raise InvalidInputError(str(exc), field) from None


def whole_number(text: str, label: str) -> int:
    """A query or form value that must be a whole number; InvalidInputError naming it
    (a page answers 422 in words, not a 500)."""
    if not text.strip().isdigit():
        raise InvalidInputError(f"{label}: {shown(text)} is not a whole number")
    return int(text)
