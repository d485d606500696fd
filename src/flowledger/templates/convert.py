"""Turning evaluated values into what a rendered template returns.

Decision on text rendering (a string that is more than one ``{{ expr }}``):
our documents are JSON, so values are spelled the JSON way. ``true`` and
``false`` for booleans, ``null`` for None (never ``""`` or ``None``, which
would hide a missing value or leak Python spelling), compact JSON for objects
and lists, ``str()`` for numbers. The same spelling is used by ``~``, the
``string`` and ``join`` filters, so ``"n={{ x }}"`` and ``{{ 'n=' ~ x }}``
agree. The one "nothing" is an inline if without else whose condition is
false (``{{ 'x' if flag }}``): it renders as ``""`` in text and None natively,
as in Jinja. A missing value is never nothing: it raises.

Native results (a string that is exactly one ``{{ expr }}``) keep their
Python type, but lazy or Python-only shapes (generators, ranges, dict views,
tuples, sets) become lists so the value can be stored as JSON.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from itertools import islice
from typing import Any

from jinja2.runtime import Undefined

from flowledger.errors import TemplateError
from flowledger.templates.limits import (
    CONTAINER_STEPS,
    SHORT_INT,
    Meter,
    TemplateLimits,
    check_collection,
    check_rendered,
    check_string,
    int_size,
)

_SCALARS = frozenset({str, int, float, bool, type(None)})
#: Counted once by their container (one per item), nothing more to convert.
_NUMBERS = frozenset({int, float, bool, type(None)})
# Shapes that are not JSON but mean "a list" to a template author.
_LIST_LIKE = (Iterator, range, tuple, set, frozenset, KeysView, ValuesView, ItemsView)


def _refuse_function() -> TemplateError:
    return TemplateError(
        "the expression evaluates to a function, not a value; add parentheses to call it"
    )


def _nothing(value: Undefined, empty: object) -> Any:
    """``{{ a if cond }}`` with a false ``cond`` gives Jinja's plain Undefined: nothing.

    Every other undefined value is a missing reference and raises; the caller
    then explains which part of the path is missing.
    """
    if type(value) is not Undefined:
        value._fail_with_undefined_error()
    return empty


def _json_default(value: object) -> object:
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def materialize(value: Iterable[Any], limits: TemplateLimits, what: str) -> list[Any]:
    """``list(value)`` that stops at the collection cap instead of exhausting memory."""
    items = list(islice(value, limits.max_collection_length + 1))
    check_collection(limits, len(items), what)
    return items


class _Walk:
    """What one conversion has visited: characters of strings plus one per other value,
    a value met again through a shared reference counted again. It stops the walk at
    ``max_rendered_size``, so ``[x] * n`` of a large ``x`` cannot make it spin.
    ``items``: the steps it took (its containers and their items, in Python)."""

    __slots__ = ("items", "left", "limits")

    def __init__(self, limits: TemplateLimits) -> None:
        self.limits = limits
        self.left = limits.max_rendered_size
        self.items = 0

    def spend(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            check_rendered(self.limits, self.limits.max_rendered_size - self.left)

    @property
    def used(self) -> int:
        return self.limits.max_rendered_size - self.left


def to_native(value: Any, limits: TemplateLimits, meter: Meter | None = None) -> Any:
    """A JSON-shaped value; containers are copied only where something changed.

    With the render's ``meter`` the walk is bounded (see :class:`_Walk`) and what it
    visited is charged to the render's budget.
    """
    kind = type(value)
    if kind in _SCALARS:
        return value
    if meter is None:
        return _native(value, limits, None)
    walk = _Walk(limits)
    result = _native(value, limits, walk)
    meter.charge(walk.used)
    meter.work(walk.items)
    return result


def _native(value: Any, limits: TemplateLimits, walk: _Walk | None) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        if walk is not None and kind is str:
            walk.spend(len(value))  # its container counted it once already
        return value
    if kind is list or kind is dict:
        return _convert_container(value, limits, walk)
    if isinstance(value, Undefined):
        return _nothing(value, None)
    if isinstance(value, _LIST_LIKE):
        value = materialize(value, limits, "the list")
    elif isinstance(value, Mapping) and kind is not dict:
        value = dict(value.items())
    elif isinstance(value, str):
        return _native(str(value), limits, walk)
    elif kind is not list and kind is not dict:
        if callable(value):
            raise _refuse_function()
        if kind is complex:  # (-1) ** 0.5: its repr would be stored as text
            raise TemplateError(f"the result {value!r} is a complex number, which JSON lacks")
        return value
    return _convert_container(value, limits, walk)


def _convert_container(
    value: dict[Any, Any] | list[Any], limits: TemplateLimits, walk: _Walk | None
) -> Any:
    changed = False
    if walk is not None:
        walk.spend(1 + len(value))  # the container, and one per item or key
        walk.items += CONTAINER_STEPS + 2 * len(value)  # a Python call per item
    if isinstance(value, dict):
        out_map: dict[Any, Any] = {}
        for key, item in value.items():
            new = _item(item, limits, walk)
            changed = changed or new is not item
            out_map[key] = new
        return out_map if changed else value
    out_list: list[Any] = []
    for item in value:
        new = _item(item, limits, walk)
        changed = changed or new is not item
        out_list.append(new)
    return out_list if changed else value


def _item(item: Any, limits: TemplateLimits, walk: _Walk | None) -> Any:
    """One item of a container: a number is kept as it is, counted once by the container;
    a long integer counts its digits beyond that, as JSON spells them out."""
    kind = type(item)
    if kind not in _NUMBERS:
        return _native(item, limits, walk)
    if kind is int and walk is not None and not -SHORT_INT < item < SHORT_INT:
        walk.spend(int_size(item) - 1)
    return item


def finish_reference(value: Any, limits: TemplateLimits) -> Any:
    """Cheap check for a value read straight from the context (no deep walk)."""
    if type(value) in _SCALARS or type(value) is dict or type(value) is list:
        return value
    return to_native(value, limits)


def to_text(value: Any, limits: TemplateLimits, meter: Meter | None = None) -> str:
    """The JSON-flavoured text of one value (see the module docstring)."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if kind is int or kind is float:
        return str(value)
    if isinstance(value, Undefined):
        return _nothing(value, "")  # type: ignore[no-any-return]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, (Mapping, list, *_LIST_LIKE)):
        return dump_json(value, limits, meter=meter)
    if callable(value):
        raise _refuse_function()
    return str(value)


def dump_json(
    value: Any, limits: TemplateLimits, indent: int | None = None, meter: Meter | None = None
) -> str:
    """Compact (or indented) JSON of ``value``, within the string cap; with the render's
    ``meter``, the text's size is charged before it is built."""
    separators = (",", ":") if indent is None else (",", ": ")
    native = to_native(value, limits, meter)  # bounded and charged by its walk
    text = json.dumps(
        native,
        ensure_ascii=False,
        indent=indent,
        separators=separators,
        default=_json_default,
    )
    check_string(limits, len(text), "the JSON text")
    return text


def kind_of(value: object) -> str:
    """How a user would name the kind of ``value`` in a sentence ("a list")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    if callable(value):
        return "a function"
    return f"a {type(value).__name__} value"


def truth(value: Any) -> bool:
    """Whether a condition (a step's ``when``, ``sys.condition``'s ``expression``, the
    ``bool`` filter) holds. Text reads the JSON way: ``"false"`` (any case, around
    spaces) is false and ``"true"`` true, since a boolean that came through text (a
    query parameter, a form, an HTTP body) must not count as true for being non-empty;
    any other value holds as Python and Jinja say (empty and zero are false)."""
    if isinstance(value, str) and (spelled := text_boolean(value)) is not None:
        return spelled
    return bool(value)


def text_boolean(text: str) -> bool | None:
    """The boolean ``text`` spells (``"true"``, ``" False "``), None for other text."""
    word = text.strip().lower()
    return word == "true" if word in ("true", "false") else None
