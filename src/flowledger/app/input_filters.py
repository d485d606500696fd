"""``PATH=VALUE``: a listing's filter on what executions were started with (their
``input``), as the CLI's ``--input`` and the API's ``?input=`` spell it alike.

``PATH`` is object keys joined by dots (``customer.id``), each a name: a letter or ``_``
first, then letters, digits, ``_`` or ``-``. Decision: no array indexes and no quoted
keys; a key that is not a name cannot be searched (one spelling, the same on both
databases). ``VALUE`` is read as JSON when it is JSON (``1234`` the number, ``"1234"``
the string, ``true``, ``null``), else as the text it is (``Ada`` is ``"Ada"``; an empty
``VALUE`` is the empty string). Only one value compares: an object or an array is
refused, as are numbers that the databases do not compare alike (an integer past 64
bits, a float too large for one).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from flowledger.errors import shown
from flowledger.jsonvalues import encodable_text
from flowledger.storage.input_match import InputMatch, Scalar

#: Filters one listing takes: each is a JSON read of every row it looks at.
MAX_INPUT_FILTERS = 10
#: Keys in one path.
MAX_PATH_DEPTH = 16
#: Characters of one ``PATH=VALUE``.
MAX_FILTER_TEXT = 1000
_NAME = re.compile(r"[^\W\d][\w-]*")
_INT64 = range(-(2**63), 2**63)


def input_filter(text: str) -> InputMatch:
    """``PATH=VALUE`` read; ValueError saying what is wrong with it."""
    if not encodable_text(text):  # an argument's undecodable byte
        raise ValueError(f"{shown(text)} is not valid Unicode text")
    if len(text) > MAX_FILTER_TEXT:
        raise ValueError(f"is {len(text):,} characters long; at most {MAX_FILTER_TEXT:,}")
    path_text, equals, value_text = text.partition("=")
    if not equals:
        raise ValueError(f"{shown(text)} has no '='; give PATH=VALUE, e.g. orderId=1234")
    return InputMatch(_path(path_text.strip()), _value(value_text))


def filter_texts(value: Any) -> Any:
    """What a request's ``input`` takes, as ``PATH=VALUE`` texts: those (a list, or one),
    or a mapping of path → JSON value (Python callers: ``{"orderId": "1234"}`` is the
    string, as typed). More than MAX_INPUT_FILTERS is a ValueError."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        value = [f"{path}={_json(item)}" for path, item in value.items()]
    elif isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple) and len(value) > MAX_INPUT_FILTERS:
        raise ValueError(
            f"{len(value)} input filters given; at most {MAX_INPUT_FILTERS} (each one reads "
            "the input of every execution the other filters select)"
        )
    return value


def _path(text: str) -> tuple[str, ...]:
    if not text:
        raise ValueError("the path before '=' is empty; name a key of the input, e.g. orderId")
    segments = tuple(text.split("."))
    if len(segments) > MAX_PATH_DEPTH:
        raise ValueError(
            f"the path {shown(text)} has {len(segments)} keys; at most {MAX_PATH_DEPTH}"
        )
    for segment in segments:
        if not segment:
            raise ValueError(f"the path {shown(text)} has an empty key (a dot at an end, or two)")
        if not _NAME.fullmatch(segment):
            raise ValueError(
                f"the path {shown(text)} has {shown(segment)}, which is not a key name "
                "(a letter or _ first, then letters, digits, _ or -; keys joined by dots)"
            )
    return segments


def _value(text: str) -> Scalar:
    try:
        value: Scalar | dict[str, Any] | list[Any] = json.loads(text, parse_constant=_not_json)
    except ValueError:  # not JSON (NaN and Infinity are not either): the text itself
        return text
    if isinstance(value, dict | list):
        raise ValueError(
            f"the value {shown(text)} is an object or an array; compare one value "
            '(a string, a number, true, false or null): e.g. customer.id=7, sku="0042"'
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"the number {shown(text)} is too large")
    if isinstance(value, int) and not isinstance(value, bool) and value not in _INT64:
        raise ValueError(
            f"the integer {shown(text)} is past 64 bits, which the databases do not compare alike"
        )
    if isinstance(value, str) and not encodable_text(value):  # "\ud800": no stored text holds it
        raise ValueError(f"the value {shown(text)} holds a lone surrogate; send valid Unicode")
    return value


def _json(value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise ValueError(f"{shown(value)} is not a JSON value") from None


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
