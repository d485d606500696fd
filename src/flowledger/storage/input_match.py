"""Which executions' input holds a value at a path (``executions list --input``), in SQL.

An execution's input is its trigger's ``arguments``, or its ``body`` when it has none
(runtime.datastore.trigger_input, the document's ``input``): the condition reads the
stored ``trigger`` text in the same order. Values compare as JSON, typed: a number only
equals a number (``1234`` equals ``1234.0``), a string only a string, ``true`` only
``true``, ``null`` only a JSON null (a missing field is not null). SQLite reads the text
with ``json_type``/``json_extract``, PostgreSQL as ``jsonb`` on a cast; path segments and
values reach the database only as bound parameters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, String, Text, and_, bindparam, cast, func, or_

Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class InputMatch:
    """The input's value at ``path`` (object keys, outermost first) equals ``value``."""

    path: tuple[str, ...]
    value: Scalar


def input_condition(
    trigger: ColumnElement[Any], match: InputMatch, *, postgres: bool
) -> ColumnElement[bool]:
    """The executions whose stored ``trigger`` text holds ``match`` in its input."""
    equals, absent = (_pg_equals, _pg_absent) if postgres else (_sqlite_equals, _sqlite_absent)
    in_arguments = equals(trigger, ("arguments", *match.path), match.value)
    in_body = equals(trigger, ("body", *match.path), match.value)
    return or_(in_arguments, and_(absent(trigger, ("arguments",)), in_body))


def _sqlite_kind(trigger: ColumnElement[Any], path: tuple[str, ...]) -> ColumnElement[Any]:
    return func.json_type(trigger, _sqlite_path(path))


def _sqlite_path(path: tuple[str, ...]) -> ColumnElement[Any]:
    # Quoted labels: a key with a hyphen is not a bare JSON path label.
    return bindparam(None, "$" + "".join(f'."{s}"' for s in path), type_=String)


def _sqlite_equals(
    trigger: ColumnElement[Any], path: tuple[str, ...], value: Scalar
) -> ColumnElement[bool]:
    kind = _sqlite_kind(trigger, path)
    if value is None:
        return kind == "null"
    if isinstance(value, bool):  # json_extract reads true as 1: the type name tells them
        return kind == ("true" if value else "false")
    kinds = ["text"] if isinstance(value, str) else ["integer", "real"]
    extracted = func.json_extract(trigger, _sqlite_path(path))
    return and_(kind.in_(kinds), extracted == bindparam(None, value))


def _sqlite_absent(trigger: ColumnElement[Any], path: tuple[str, ...]) -> ColumnElement[bool]:
    """No value at ``path``, or a JSON null."""
    return func.coalesce(_sqlite_kind(trigger, path), "null") == "null"


def _pg_value(trigger: ColumnElement[Any], path: tuple[str, ...]) -> ColumnElement[Any]:
    # Imported here: on SQLite no process loads SQLAlchemy's PostgreSQL dialect.
    from sqlalchemy.dialects.postgresql import JSONB

    segments = [bindparam(None, s, type_=Text) for s in path]
    return func.jsonb_extract_path(cast(trigger, JSONB), *segments)


def _pg_equals(
    trigger: ColumnElement[Any], path: tuple[str, ...], value: Scalar
) -> ColumnElement[bool]:
    from sqlalchemy.dialects.postgresql import JSONB

    # jsonb equality is typed: numbers by value (5 = 5.0), strings exactly, no 7 = "7".
    return _pg_value(trigger, path) == cast(bindparam(None, json.dumps(value), type_=Text), JSONB)


def _pg_absent(trigger: ColumnElement[Any], path: tuple[str, ...]) -> ColumnElement[bool]:
    """No value at ``path``, or a JSON null."""
    return func.coalesce(func.jsonb_typeof(_pg_value(trigger, path)), "null") == "null"
