"""Every value that comes in as JSON, checked by one set of rules (the CLI's ``--input``,
``--input-file``, ``--data``, ``--filter``, the HTTP face's bodies, the Python API).

Text (:func:`parse_json`, :func:`read_json_file`) is refused, cheaply and before it is
parsed, when it is larger than ``FLOWLEDGER_MAX_INPUT`` or nests deeper than
``FLOWLEDGER_MAX_JSON_DEPTH``; then it must be strict JSON: no ``NaN`` or ``Infinity``,
no number too large for a float (``1e999``), no integer over 4,300 digits. Every parsed
value (:func:`check_json_value`, also run on values that arrive already parsed) holds no
lone surrogate (it could not be stored as UTF-8) and no non-finite float. A file must be
UTF-8 text. Each refusal is one line naming what was given and where.

Schema files (JSON or YAML) go through the definition loader, with its limits on size,
depth and nodes (so an alias bomb costs nothing).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from flowledger.app.limits import check_json_depth, too_large
from flowledger.config import Limits, current_limits
from flowledger.errors import DefinitionError, InputError, MalformedBodyError
from flowledger.jsonvalues import MAX_INT_DIGITS, check_json_value

#: Entity filters and offsets compare with 64-bit database integers.
MAX_INT64 = 2**63 - 1


class _Refused(ValueError):
    pass


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {_short(text)} is too large")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"an integer has {len(text):,} digits; the limit is {MAX_INT_DIGITS:,}")
    return int(text)


def _short(text: str) -> str:
    return text if len(text) <= 20 else text[:17] + "..."


def parse_json(text: str, what: str, limits: Limits | None = None) -> Any:
    """Strict JSON text, or InputError naming ``what`` (and the column)."""
    limits = limits or current_limits()
    _check_text(text, what, limits)
    try:
        value = _loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}" if "\n" in text else f"column {exc.colno}"
        raise InputError(f"{what} is not valid JSON ({where}): {exc.msg}") from None
    except _Refused as exc:
        raise InputError(f"{what} is not valid JSON: {exc}") from None
    check_json_value(value, what)
    return value


def _loads(text: str | bytes) -> Any:
    return json.loads(
        text,
        parse_constant=_constant,
        parse_float=_float,
        parse_int=_int,
        object_pairs_hook=_unique_keys,
    )


class _Duplicate(_Refused):
    def __init__(self, key: str) -> None:
        super().__init__(f"the key {json.dumps(key)} appears twice in one object")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # JSON leaves a repeated key's meaning open (Python keeps the last, other parsers the
    # first): two readers of one document could act on different values, so refuse it.
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(key)
            seen.add(key)
    return value


def malformed_json_error(data: bytes) -> MalformedBodyError | None:
    """The refusal of JSON text that Python's parser takes but JSON is not: a key twice
    in one object, ``NaN``, ``Infinity`` or ``-Infinity``, ``1e999``; of bytes that are
    not UTF-8 text (the HTTP face's parser answered those with a bare "There was an error
    parsing the body", naming nothing); or None, also when the text is not JSON at all
    (its parser then says what is wrong). For bodies that a parser other than
    :func:`parse_json` reads (the HTTP face's models, which took a NaN as a number and
    then refused it as a value with no field named, and ``1e999`` too, as infinity).
    The same rules as :func:`parse_json`: numbers too large for a float, integers of more
    than 4,300 digits."""
    try:
        # Decoded as UTF-8 here: given bytes, json.loads guesses UTF-16 and UTF-32 too,
        # and a body in either was taken (RFC 8259: JSON exchanged is UTF-8).
        _loads(data.decode("utf-8"))
    except _Refused as exc:
        return MalformedBodyError(f"the request body is not valid JSON: {exc}")
    except UnicodeDecodeError as exc:
        return MalformedBodyError(
            "the request body is not valid JSON: it is not UTF-8 text (byte "
            f"0x{data[exc.start]:02x} at position {exc.start}); send JSON as UTF-8"
        )
    except ValueError:  # not JSON (JSONDecodeError): the route's parser says where
        return None
    return None


def parse_json_checked(text: str, what: str) -> Any:
    """Strict JSON text whose size and depth the caller has already bounded (a webhook
    body, under its own body limit): the same rules as :func:`parse_json` otherwise."""
    try:
        value = _loads(text)
    except (json.JSONDecodeError, _Refused) as exc:
        raise InputError(f"{what} is not valid JSON: {exc}") from None
    check_json_value(value, what)
    return value


def _check_text(text: str, what: str, limits: Limits) -> None:
    limit = limits.max_input
    if len(text) > limit or len(text.encode("utf-8", "surrogatepass")) > limit:
        raise too_large(what, limit, "max_input")
    if "\x00" in text:
        raise InputError(f"{what} holds a NUL character, which JSON text cannot contain raw")
    try:
        check_json_depth(text.encode("utf-8", "surrogatepass"), limits.max_json_depth)
    except InputError as exc:
        raise InputError(f"{what}: {exc}") from None


def read_json_file(path: str, limits: Limits | None = None) -> Any:
    """A JSON file's value, or InputError naming the file (with line and column)."""
    limits = limits or current_limits()
    text = read_text_file(path, "input file", limits.max_input)
    _check_text(text, path, limits)
    try:
        value = _loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except _Refused as exc:
        raise InputError(f"{path}: invalid JSON: {exc}") from None
    check_json_value(value, path)
    return value


def read_text_file(path: str, what: str, limit: int) -> str:
    """A UTF-8 text file no larger than ``limit`` bytes, checked before it is read."""
    file = Path(path)
    try:
        if file.stat().st_size > limit:
            raise too_large(f"the {what} {path}", limit, "max_input")
        with file.open("rb") as stream:  # bounded: /dev/zero or a growing file stop here
            data = stream.read(limit + 1)
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > limit:  # grew, or a special file whose size stat does not know
        raise too_large(f"the {what} {path}", limit, "max_input")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"{path}:{line}: the {what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at "
            f"offset {exc.start})"
        ) from None


def read_schema_file(path: str, limits: Limits | None = None) -> dict[str, Any]:
    """A JSON Schema from a JSON or YAML file (it must be an object), read by the same
    safe loader as definitions."""
    from flowledger.definition.source import parse_document

    limits = limits or current_limits()
    text = read_text_file(path, "schema file", limits.max_definition)
    try:
        schema = parse_document(text, path).data
    except DefinitionError as exc:
        first = str(exc).splitlines()[0] if str(exc) else path
        raise InputError(f"{first} (the schema is not valid JSON or YAML)") from None
    if not isinstance(schema, dict):
        raise InputError(f"{path}: a JSON Schema must be an object, e.g. {{type: object}}")
    return schema


def parse_json_object(text: str, what: str, example: str = "") -> dict[str, Any]:
    """JSON text that must be an object (workflow input, an entity payload, a filter)."""
    value = parse_json(text, what)
    if not isinstance(value, dict):
        raise InputError(f"{what} must be a JSON object{', e.g. ' + example if example else ''}")
    return value


def json_object(value: Any, what: str) -> dict[str, Any]:
    """A parsed value that must be a JSON object."""
    if not isinstance(value, dict):
        raise InputError(f"{what} must be a JSON object")
    return value


def check_json_size(value: Any, limit: int, field: str) -> None:
    """InputError when ``value`` cannot be stored as the same JSON (app.inputs rules),
    TooLargeError when it is over ``limit`` bytes as JSON (``max_input``)."""
    if value is None:
        return
    check_json_value(value, field)
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > limit:
        raise too_large(f"the {field}", limit, "max_input", (field,))
