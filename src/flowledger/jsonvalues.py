"""Python values that must be stored as JSON: a workflow's input given to the Python
API, a custom step's output.

JSON as it is (dicts with text keys, lists, text, integers, finite floats, booleans,
None) passes untouched: :func:`is_plain` answers that in one walk, the common case.
Anything else is converted as pydantic converts a model's fields in JSON mode, so a
step returning a dict reads the same as one returning a model: a datetime becomes ISO
8601 text, a set or a tuple a list, a UUID or a Decimal text. What has no JSON form
(an arbitrary object, NaN, an infinity) is refused in words, naming where it is:
storing it as its ``repr`` or as null would change the value without a word.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any, NoReturn

from flowledger.errors import InvalidInputError, format_path
from flowledger.types import PathSegment

#: Python refuses longer integer literals (``sys.get_int_max_str_digits``).
MAX_INT_DIGITS = 4300
_SURROGATE = re.compile("[\ud800-\udfff]")
#: Integers shorter than this many bits have fewer than 4,300 digits (log10(2) < 0.302).
_SHORT_INT_BITS = int(MAX_INT_DIGITS / 0.302)
#: Values looked at to say where an unconvertible one is.
_MAX_SEARCH = 100_000


class NotJSONError(ValueError):
    """A value with no JSON form; the message names where it is."""


def is_plain(value: Any) -> bool:
    """True when ``value`` is JSON as it is (and is stored as it is)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is dict:
        return all(type(key) is str and is_plain(item) for key, item in value.items())
    if kind is list:
        return all(is_plain(item) for item in value)
    return False


def to_plain(value: Any, what: str) -> Any:
    """``value`` as JSON data (itself when :func:`is_plain`); NotJSONError naming the
    place under ``what`` (``output.items[2]``) of what JSON cannot hold."""
    try:
        if is_plain(value):
            return value
    except RecursionError:  # a cycle, or absurdly deep: the converter below names it
        pass
    from pydantic_core import PydanticSerializationError, to_jsonable_python

    try:
        converted = to_jsonable_python(value)
    except PydanticSerializationError:
        raise NotJSONError(_unknown(value, what)) from None
    except UnicodeDecodeError:  # bytes are converted as UTF-8 text: these are not text
        raise NotJSONError(binary_bytes(value, what)) from None
    except (ValueError, RecursionError):
        raise NotJSONError(f"{what} contains itself, or is nested too deeply for JSON") from None
    found = non_finite(converted, what)
    if found is not None:
        raise NotJSONError(found)
    return converted


def storable(value: Any, what: str) -> Any:
    """:func:`to_plain`, a lone surrogate refused too (no UTF-8 for it): for what the
    engine keeps that no later dump checks first, a variable's value, a ``Suspend``'s
    state, a ``StepError``'s details, the workflow's output. (A step's output is checked
    from its dumped text, which the commit needs anyway: see :func:`lone_surrogate`.)"""
    plain = to_plain(value, what)
    try:
        if _encodable(plain):  # one quick pass for the common answer; the walk says where
            return plain
    except RecursionError:
        pass
    for path, item in _walk(plain):
        kind = type(item)
        if kind is str and not item.isascii():
            found = _surrogate_in(item, what, path)
            if found is not None:
                raise NotJSONError(found)
        elif kind is int and too_long(item):
            raise NotJSONError(
                f"{_where(what, path)} is an integer of more than {MAX_INT_DIGITS:,} digits, "
                "which JSON here cannot hold"
            )
    return plain


def too_long(number: int) -> bool:
    """``number`` has more digits than Python writes as text (``sys.set_int_max_str_digits``),
    so JSON text cannot be made of it."""
    if number.bit_length() < _SHORT_INT_BITS:
        return False
    try:
        str(number)
    except ValueError:
        return True
    return False


def non_finite(value: Any, what: str) -> str | None:
    """Where ``value`` (JSON data) holds NaN or an infinity, in words; None if nowhere."""
    try:
        if _finite(value):  # one quick pass for the common answer; the walk says where
            return None
    except RecursionError:
        pass
    for path, item in _walk(value):
        if isinstance(item, float) and not math.isfinite(item):
            return f"{_where(what, path)} is {item}, which JSON cannot hold"
    return None


def _encodable(value: Any) -> bool:
    """No lone surrogate and no integer too long for text in ``value`` (JSON data)."""
    kind = type(value)
    if kind is str:
        return value.isascii() or _SURROGATE.search(value) is None
    if kind is int:
        return value.bit_length() < _SHORT_INT_BITS or not too_long(value)
    if kind is dict:
        return all(_encodable(key) and _encodable(item) for key, item in value.items())
    if kind is list:
        return all(_encodable(item) for item in value)
    return True


def _finite(value: Any) -> bool:
    """No NaN or infinity in ``value``: a walk in a few Python frames (``_walk``'s
    generator costs several times this on a step's small output)."""
    kind = type(value)
    if kind is float:
        return math.isfinite(value)
    if kind is dict:
        value = value.values()
    elif kind is not list and kind is not tuple:
        return True
    for item in value:
        if type(item) is not str and type(item) is not int and not _finite(item):
            return False
    return True


def lone_surrogate(value: Any, what: str) -> str | None:
    """Where ``value`` (JSON data) holds a lone surrogate (``"\\ud800"``), which UTF-8
    cannot store, in a text or a key, in words; None if nowhere."""
    for path, item in _walk(value):
        if type(item) is str and not item.isascii():
            found = _surrogate_in(item, what, path)
            if found is not None:
                return found
    return None


def _surrogate_in(text: str, what: str, path: tuple[PathSegment, ...]) -> str | None:
    found = _SURROGATE.search(text)
    if found is None:
        return None
    code = f"\\u{ord(found.group()):04x}"
    return f"{_where(what, path)} holds a lone surrogate ({code}), which UTF-8 cannot store"


def _where(what: str, path: tuple[PathSegment, ...]) -> str:
    """``what`` and the path inside it (``output.items[2]``), a key's lone surrogate
    escaped: the message is stored, and must be storable itself."""
    rest = format_path(path)
    if not rest or not what:
        where = rest or what or "the value"
    else:
        where = f"{what}{rest}" if rest.startswith("[") else f"{what}.{rest}"
    return where if where.isascii() else where.encode("utf-8", "backslashreplace").decode()


def _unknown(value: Any, what: str) -> str:
    """Where the first value the converter refused is (pydantic does not say)."""
    from pydantic_core import PydanticSerializationError, to_jsonable_python

    for seen, (path, item) in enumerate(_walk(value)):
        if seen > _MAX_SEARCH:  # a cycle through a container: give up looking
            break
        if isinstance(item, dict | list | tuple):
            continue
        try:
            to_jsonable_python(item)
        except PydanticSerializationError:
            where = _where(what, path)
            return f"{where} holds a value of type {type(item).__name__}, which has no JSON form"
    return f"{what} has no JSON form"


def binary_bytes(value: Any, what: str) -> str:
    """Where ``value`` holds bytes that are not UTF-8 text, in words: they were reported
    as a value that contains itself (the converter's UnicodeDecodeError is a ValueError)."""
    where = what
    for seen, (path, item) in enumerate(_walk(value)):
        if seen > _MAX_SEARCH:
            break
        if isinstance(item, bytes | bytearray):
            try:
                bytes(item).decode()
            except UnicodeDecodeError:
                where = _where(what, path)
                break
    return (
        f"{where} holds bytes that are not UTF-8 text, which JSON cannot hold; save binary "
        "data as a file (ctx.artifacts.save) and return its description, or encode it "
        "(base64) as text"
    )


def _walk(value: Any) -> Iterator[tuple[tuple[PathSegment, ...], Any]]:
    """Every value and object key inside ``value`` with its path, iteratively; each
    container's items once, so a value that contains itself ends (a handler's, as it
    returned it)."""
    stack: list[tuple[tuple[PathSegment, ...], Any]] = [((), value)]
    opened: set[int] = set()
    while stack:
        path, item = stack.pop()
        yield path, item
        if isinstance(item, dict | list | tuple):
            if id(item) in opened:
                continue
            opened.add(id(item))
        if isinstance(item, dict):
            for key, child in item.items():
                yield (*path, key), key
                stack.append(((*path, key), child))
        elif isinstance(item, list | tuple):
            stack.extend(((*path, i), child) for i, child in enumerate(item))


def check_json_value(value: Any, what: str, *, max_int: int | None = None) -> None:
    """InvalidInputError when a parsed value cannot be stored and read back as the same
    JSON: a lone surrogate, a non-finite float, an integer over ``max_int`` (or 4,300
    digits); or on every database alike: a NUL character, which PostgreSQL's text
    refuses and SQLite's keeps (app.limits refuses it at every face the same way). Its
    field path is ``what`` (the field's name) and the place inside the value
    (``input.name``), so an HTTP answer's ``details.field_path`` names it."""
    for path, item in _walk(value):
        if isinstance(item, str):
            if "\x00" in item:  # a key's own NUL spelled out: the message is text too
                place = tuple(p.replace("\x00", "\\x00") if isinstance(p, str) else p for p in path)
                _refuse(what, place, NUL_REFUSED)
            found = _SURROGATE.search(item)
            if found:
                code = f"\\u{ord(found.group()):04x}"
                _refuse(what, path, f"holds a lone surrogate ({code}); send valid Unicode")
        elif isinstance(item, float) and not math.isfinite(item):
            _refuse(what, path, f"{item} is not a JSON number")
        elif isinstance(item, int) and not isinstance(item, bool):
            if max_int is not None and abs(item) > max_int:
                _refuse(what, path, f"too large: integers here are at most {max_int:,}")
            if item.bit_length() > MAX_INT_DIGITS * 3.33:
                _refuse(what, path, f"an integer of more than {MAX_INT_DIGITS:,} digits")


#: What a string holding U+0000 is told, wherever it comes in.
NUL_REFUSED = "must not contain NUL characters (U+0000)"


def _refuse(what: str, path: tuple[PathSegment, ...], message: str) -> NoReturn:
    raise InvalidInputError(message, (what, *path))


# -- text a database can hold ------------------------------------------------------------
# UTF-8 has no form for a lone surrogate ("\\ud800", or a command argument's undecodable
# byte, read as "\\udcff"), and a driver given one raises a raw UnicodeEncodeError. So no
# stored id or name holds one: a lookup by such text finds nothing, and says so with the
# text spelled escaped (tour 23).


def encodable_text(text: str) -> bool:
    """``text`` has a UTF-8 form (no lone surrogate, which no database text holds)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def spelled(text: str) -> str:
    """``text`` for a message, a lone surrogate spelled ``\\ud800`` (a message must be
    printable and storable itself)."""
    return text if encodable_text(text) else text.encode("utf-8", "backslashreplace").decode()


def quoted(text: str) -> str:
    """``repr(text)``, or :func:`spelled` in quotes (repr would double its backslash)."""
    return repr(text) if encodable_text(text) else f"'{spelled(text)}'"
