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
import re
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
    held = [trigger.contains(text, autoescape=True) for text in _spelled(match)]
    if postgres:
        return and_(*held, _pg_equals(trigger, match))
    in_arguments = _sqlite_equals(trigger, ("arguments", *match.path), match.value)
    in_body = _sqlite_equals(trigger, ("body", *match.path), match.value)
    return and_(*held, or_(in_arguments, and_(_sqlite_absent(trigger, "arguments"), in_body)))


def _spelled(match: InputMatch) -> list[str]:
    """Text the stored trigger holds wherever it holds ``match``: a LIKE on it first spares
    parsing the JSON of the rows that cannot match (without it, a search for one order
    among 20,000 executions parsed each one's trigger two or three times: 1.5 s on
    PostgreSQL, 0.33 s on SQLite, against 0.15 s and 0.18 s with it, about what reading
    the table takes). Only spellings every JSON writer of ours gives alike: the last key
    and a string value when they are printable ASCII without quotes or backslashes
    (nothing escapes them), an integer's digits (a stored number equal to it has them:
    ``1234``, ``-1234``, ``1234.0``; a float is positional below 10**15)."""
    spelled = []
    key, value = match.path[-1], match.value
    if _PLAIN.fullmatch(key):
        spelled.append(f'"{key}"')
    if isinstance(value, str) and _PLAIN.fullmatch(value):
        spelled.append(f'"{value}"')
    elif isinstance(value, int | float) and not isinstance(value, bool):
        whole = isinstance(value, int) or value.is_integer()  # False for inf and nan
        if whole and abs(value) < _POSITIONAL:
            spelled.append(str(abs(int(value))))
    return spelled


_PLAIN = re.compile(r"[ !#-\[\]-~]+")  # printable ASCII but " and \
#: Python writes a float at or past 1e16 as 1e+16: its digits are not in the text.
_POSITIONAL = 10**15


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


def _sqlite_absent(trigger: ColumnElement[Any], key: str) -> ColumnElement[bool]:
    """No value at ``key``, or a JSON null."""
    return func.coalesce(_sqlite_kind(trigger, (key,)), "null") == "null"


def _pg_equals(trigger: ColumnElement[Any], match: InputMatch) -> ColumnElement[bool]:
    # Imported here: on SQLite no process loads SQLAlchemy's PostgreSQL dialect.
    from sqlalchemy.dialects.postgresql import JSONB

    def jsonb(text: str) -> ColumnElement[Any]:
        return cast(bindparam(None, text, type_=Text), JSONB)

    def part(name: str) -> ColumnElement[Any]:
        return func.jsonb_extract_path(cast(trigger, JSONB), bindparam(None, name, type_=Text))

    # The text is cast once for most rows: COALESCE reads the body only without arguments
    # (three casts, one per branch as on SQLite, took twice as long).
    given = func.coalesce(func.nullif(part("arguments"), jsonb("null")), part("body"))
    segments = [bindparam(None, s, type_=Text) for s in match.path]
    # jsonb equality is typed: numbers by value (5 = 5.0), strings exactly, no 7 = "7".
    return func.jsonb_extract_path(given, *segments) == jsonb(json.dumps(match.value))
