"""The filters templates may use: an explicit allow-list.

Filters that can grow a value check the predicted size before building it.
Filters that turn values into text use the JSON spelling of
:mod:`flowledger.templates.convert`. ``int`` and ``float`` raise on input they
cannot convert instead of silently returning 0 (pass a default to opt in).
Everything else from Jinja (``format``, ``attr``, ``center``, ``indent``,
``wordwrap``, ``xmlattr``, ``urlize``, ``pprint``, ...) is left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from jinja2 import pass_context
from jinja2.filters import (
    do_batch,
    do_capitalize,
    do_default,
    do_dictsort,
    do_items,
    do_last,
    do_max,
    do_min,
    do_reverse,
    do_round,
    do_sort,
    do_title,
    do_truncate,
    do_urlencode,
    make_attrgetter,
    sync_do_first,
    sync_do_map,
    sync_do_reject,
    sync_do_rejectattr,
    sync_do_select,
    sync_do_selectattr,
    sync_do_slice,
    sync_do_sum,
    sync_do_unique,
)
from jinja2.runtime import Context

from flowledger.errors import TemplateError, TemplateLimitError
from flowledger.templates.context import RenderContext, render_context
from flowledger.templates.convert import dump_json, kind_of, materialize, to_text, truth
from flowledger.templates.limits import (
    ATTRIBUTE_STEPS,
    KEY_STEPS,
    Meter,
    check_bits,
    check_collection,
    check_string,
)

_UNSET: Any = object()
_MAX_ROUND_PRECISION = 100
_MAX_JSON_INDENT = 16


def _produce_text(ctx: RenderContext, length: int, what: str) -> None:
    check_string(ctx.limits, length, what)
    ctx.meter.charge(length)


def _text_filter(
    transform: Callable[[str], str], name: str, *, per_word: bool = False
) -> Callable[..., str]:
    """A filter that maps the value's text to a string of about the same size;
    ``per_word``: it works word by word in Python (``title``), so each possible word (at
    most one per two characters) is counted as the two steps it costs, or a render of a
    few such calls held the event loop for seconds within every other limit."""

    @pass_context
    def text_filter(context: Context, value: Any) -> str:
        ctx = render_context(context)
        text = to_text(value, ctx.limits, ctx.meter)
        _produce_text(ctx, len(text), f"the result of '{name}'")
        if per_word:
            ctx.meter.work(len(text) + 1)
        return transform(text)

    return text_filter


@pass_context
def _trim(context: Context, value: Any, chars: str | None = None) -> str:
    ctx = render_context(context)
    text = to_text(value, ctx.limits, ctx.meter)
    _produce_text(ctx, len(text), "the result of 'trim'")
    return text.strip(chars)


@pass_context
def _string(context: Context, value: Any) -> str:
    ctx = render_context(context)
    return to_text(value, ctx.limits, ctx.meter)


@pass_context
def _tojson(context: Context, value: Any, indent: int | None = None) -> str:
    ctx = render_context(context)
    if indent is not None and not (isinstance(indent, int) and 0 <= indent <= _MAX_JSON_INDENT):
        raise TemplateError(f"tojson indent must be a whole number from 0 to {_MAX_JSON_INDENT}")
    return dump_json(value, ctx.limits, indent, ctx.meter)


@pass_context
def _join(context: Context, value: Any, d: Any = "", attribute: str | int | None = None) -> str:
    ctx = render_context(context)
    if attribute is not None:
        value = map(make_attrgetter(context.environment, attribute), value)
    items = materialize(value, ctx.limits, "join's input")
    ctx.meter.work(len(items))
    separator = to_text(d, ctx.limits, ctx.meter)
    total = len(separator) * max(len(items) - 1, 0)
    check_string(ctx.limits, total, "the joined text")
    parts: list[str] = []
    limit = ctx.limits.max_string_length
    for item in items:  # the length checked as it grows: a part can be long to spell
        part = to_text(item, ctx.limits, ctx.meter)
        total += len(part)
        if total > limit:
            raise TemplateLimitError(
                f"the joined text would be longer than {limit:,} characters, the limit"
            )
        parts.append(part)
    ctx.meter.charge(total)
    return separator.join(parts)


@pass_context
def _replace(context: Context, value: Any, old: Any, new: Any, count: int | None = None) -> str:
    ctx = render_context(context)
    text, old_text, new_text = (to_text(v, ctx.limits, ctx.meter) for v in (value, old, new))
    hits = text.count(old_text)  # '' matches len(text) + 1 times, as replace() does
    if count is not None:
        hits = min(hits, max(count, 0))
    _produce_text(ctx, len(text) + hits * (len(new_text) - len(old_text)), "the replaced text")
    return text.replace(old_text, new_text, -1 if count is None else count)


@pass_context
def _truncate(context: Context, value: Any, *args: Any, **kwargs: Any) -> str:
    ctx = render_context(context)
    text = to_text(value, ctx.limits, ctx.meter)
    result = do_truncate(context.environment, text, *args, **kwargs)
    _produce_text(ctx, len(result), "the truncated text")
    return result


@pass_context
def _urlencode(context: Context, value: Any) -> str:
    ctx = render_context(context)
    ctx.meter.charge(ctx.meter.measure(value))  # str() of nested values inside
    if isinstance(value, str):  # quoted character by character in Python
        ctx.meter.work(len(value) // 4)
    elif isinstance(value, Mapping | list | tuple):
        ctx.meter.work(len(value) * KEY_STEPS)  # two quotings per pair
    result = do_urlencode(value)
    _produce_text(ctx, len(result), "the URL-encoded text")
    return result


@pass_context
def _list(context: Context, value: Any) -> list[Any]:
    ctx = render_context(context)
    items = materialize(value, ctx.limits, "the list")
    ctx.meter.charge(len(items))  # nested values are counted where they are walked
    return items


@pass_context
def _flatten(context: Context, value: Any) -> list[Any]:
    """One level: a list item gives its items, any other item is kept as it is. The
    pages of a paged loop (``results | map(attribute='fetch.body.items') | flatten``)
    become one list; ``sum(start=[])`` is refused, as its additions are quadratic."""
    ctx = render_context(context)
    items = materialize(value, ctx.limits, "the input of 'flatten'")
    size = sum(len(item) if isinstance(item, list | tuple) else 1 for item in items)
    check_collection(ctx.limits, size, "the result of 'flatten'")
    ctx.meter.work(len(items))  # a Python step per item
    ctx.meter.charge(size)
    flat: list[Any] = []
    for item in items:
        if isinstance(item, list | tuple):
            flat.extend(item)
        else:
            flat.append(item)
    return flat


@pass_context
def _sort(context: Context, value: Any, *args: Any, **kwargs: Any) -> list[Any]:
    ctx = render_context(context)
    items = materialize(value, ctx.limits, "the list")
    _charge_comparisons(ctx, items, _by_attribute(args, kwargs, 2))
    return do_sort(context.environment, items, *args, **kwargs)


def _by_attribute(args: tuple[Any, ...], kwargs: dict[str, Any], position: int) -> bool:
    """Whether a filter's ``attribute`` argument (keyword, or positional at ``position``)
    is given."""
    return kwargs.get("attribute") is not None or (
        len(args) > position and args[position] is not None
    )


def _charge_comparisons(ctx: RenderContext, items: list[Any], by_attribute: bool) -> None:
    """Sorting compares about n·log n times, each walking nested items: charged as such,
    so a chain of sorts cannot cost more than the render's budget in time either. The
    comparisons run in C; the key of each item is computed in Python."""
    rounds = max(1, len(items).bit_length())
    ctx.meter.work(len(items) * (KEY_STEPS + (ATTRIBUTE_STEPS if by_attribute else 0)))
    ctx.meter.charge(ctx.meter.measure(items) * rounds)


def _counting(value: Iterable[Any], meter: Meter, steps: int) -> Iterator[Any]:
    """``value``'s items, ``steps`` counted for each one taken."""
    for item in value:
        meter.work(steps)
        yield item


def _per_item(each: Callable[..., Any], *, by_attribute: bool = False) -> Callable[..., Any]:
    """``map``, ``select`` and the like call back into Python for every item of their
    input: each item taken is a step (three with an attribute looked up on it), whether
    it is kept or not (``select`` counted only what it kept, so a test that refuses every
    item ran for free), and a filter or test called on it by name counts its own cost
    (SandboxEnvironment.call_filter)."""

    @pass_context
    def counted(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        if not value:  # Jinja's own answer for a falsy input (nothing, or an error)
            return each(context, value, *args, **kwargs)
        steps = 1
        if by_attribute or (not args and "attribute" in kwargs):
            steps += ATTRIBUTE_STEPS
        meter = render_context(context).meter
        return each(context, _counting(value, meter, steps), *args, **kwargs)

    return counted


def _comparing(compare: Callable[..., Any], name: str) -> Callable[..., Any]:
    """``max``, ``min``, ``unique``: their comparisons walk nested items, so the input's
    real size is charged first."""

    @pass_context
    def comparing(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        ctx = render_context(context)
        items = materialize(value, ctx.limits, f"the input of '{name}'")
        _charge_comparisons(ctx, items, _by_attribute(args, kwargs, 1))
        if compare is sync_do_unique:
            return list(compare(context.environment, items, *args, **kwargs))
        return compare(context.environment, items, *args, **kwargs)

    return comparing


@pass_context
def _items(context: Context, value: Any) -> Any:
    """A mapping's pairs, handed on one by one by a Python generator: a step each."""
    return _counting(do_items(value), render_context(context).meter, 1)


@pass_context
def _dictsort(context: Context, value: Any, *args: Any, **kwargs: Any) -> list[Any]:
    ctx = render_context(context)
    check_collection(ctx.limits, len(value), "the sorted list")
    ctx.meter.charge(ctx.meter.measure(value))
    ctx.meter.work(len(value) * KEY_STEPS)  # its sort key is a Python function
    return do_dictsort(value, *args, **kwargs)


@pass_context
def _reverse(context: Context, value: Any) -> Any:
    ctx = render_context(context)
    if isinstance(value, str):
        _produce_text(ctx, len(value), "the reversed text")
    return do_reverse(value)


def _check_chunk_count(context: Context, count: Any, name: str, fill_with: Any) -> None:
    ctx = render_context(context)
    if isinstance(fill_with, list | tuple | Mapping):  # repeated up to count times
        raise TemplateError(f"'{name}' fills with a single value (a string or a number)")
    if not isinstance(count, int) or count < 1:
        raise TemplateError(f"'{name}' needs a whole number of at least 1")
    check_collection(ctx.limits, count, f"each chunk of '{name}'")


@pass_context
def _batch(context: Context, value: Any, linecount: Any, fill_with: Any = None) -> Any:
    _check_chunk_count(context, linecount, "batch", fill_with)
    return do_batch(_counting(value, render_context(context).meter, 2), linecount, fill_with)


@pass_context
def _slice(context: Context, value: Any, slices: Any, fill_with: Any = None) -> Any:
    _check_chunk_count(context, slices, "slice", fill_with)
    ctx = render_context(context)
    items = materialize(value, ctx.limits, "the list to slice")
    ctx.meter.work(len(items))  # copied item by item in Python
    return sync_do_slice(items, slices, fill_with)


@pass_context
def _round(context: Context, value: Any, precision: Any = 0, method: str = "common") -> Any:
    if not isinstance(precision, int) or abs(precision) > _MAX_ROUND_PRECISION:
        raise TemplateLimitError(
            f"round() precision must be a whole number from -{_MAX_ROUND_PRECISION} "
            f"to {_MAX_ROUND_PRECISION}"
        )
    return _checked_number(context, do_round(value, precision, method))  # type: ignore[arg-type]


@pass_context
def _sum(context: Context, value: Any, attribute: Any = None, start: Any = 0) -> Any:
    if isinstance(start, bool) or not isinstance(start, int | float):
        raise TemplateError("sum() start must be a number")  # lists would add up quadratically
    meter = render_context(context).meter
    if attribute is not None:  # looked up item by item in Python
        value = _counting(value, meter, ATTRIBUTE_STEPS)
    else:
        meter.walk(value)  # added up in C (a generator's items were counted where made)
    return _checked_number(context, sync_do_sum(context.environment, value, attribute, start))


def _checked_number(context: Context, result: Any) -> Any:
    if isinstance(result, float) and not math.isfinite(result):
        raise TemplateLimitError("the result is too large for a number (float overflow)")
    if isinstance(result, int):
        check_bits(render_context(context).limits, result.bit_length())
    return result


@pass_context
def _int(context: Context, value: Any, default: Any = _UNSET, base: int = 10) -> Any:
    try:
        result = int(value, base) if isinstance(value, str) else int(value)
    except (TypeError, ValueError, OverflowError):
        try:
            result = int(float(value))  # "42.5"|int is 42, as in Jinja
        except (TypeError, ValueError, OverflowError):
            if default is _UNSET:
                raise TemplateError(
                    f"cannot convert {kind_of(value)} to an integer "
                    "(give a fallback with int(default))"
                ) from None
            return default
    return _checked_number(context, result)


@pass_context
def _float(context: Context, value: Any, default: Any = _UNSET) -> Any:
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):
        result = math.nan
    if math.isfinite(result):
        return result
    if default is not _UNSET:
        return default
    if math.isinf(result):
        raise TemplateLimitError("the number is too large for a float (overflow)")
    raise TemplateError(
        f"cannot convert {kind_of(value)} to a number (give a fallback with float(default))"
    )


def _bool(value: Any) -> bool:
    return truth(value)


def build_filters() -> dict[str, Callable[..., Any]]:
    """The filter table a sandbox environment installs (a fresh dict each call)."""
    return {
        "abs": abs,
        "batch": _batch,
        "bool": _bool,
        "capitalize": _text_filter(do_capitalize, "capitalize"),
        "count": len,
        "d": do_default,
        "default": do_default,
        "dictsort": _dictsort,
        "first": sync_do_first,
        "flatten": _flatten,
        "float": _float,
        "int": _int,
        "items": _items,
        "join": _join,
        "last": do_last,
        "length": len,
        "list": _list,
        "lower": _text_filter(str.lower, "lower"),
        "map": _per_item(sync_do_map),
        "max": _comparing(do_max, "max"),
        "min": _comparing(do_min, "min"),
        "reject": _per_item(sync_do_reject),
        "rejectattr": _per_item(sync_do_rejectattr, by_attribute=True),
        "replace": _replace,
        "reverse": _reverse,
        "round": _round,
        "select": _per_item(sync_do_select),
        "selectattr": _per_item(sync_do_selectattr, by_attribute=True),
        "slice": _slice,
        "sort": _sort,
        "string": _string,
        "sum": _sum,
        "title": _text_filter(do_title, "title", per_word=True),
        "tojson": _tojson,
        "trim": _trim,
        "truncate": _truncate,
        "unique": _comparing(sync_do_unique, "unique"),
        "upper": _text_filter(str.upper, "upper"),
        "urlencode": _urlencode,
    }


ALLOWED_FILTERS: frozenset[str] = frozenset(build_filters())


def _walking_test(test: Callable[..., Any]) -> Callable[..., Any]:
    @pass_context
    def walking(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        render_context(context).meter.walk(value, *args)
        return test(value, *args, **kwargs)

    return walking


#: Jinja's tests that walk their operands (in C): containment, comparisons of lists or
#: text, the case of text.
WALKING_TESTS = frozenset(
    {
        "in", "==", "eq", "equalto", "!=", "ne", "<", "lt", "lessthan", "<=", "le",
        ">", "gt", "greaterthan", ">=", "ge", "lower", "upper",
    }
)  # fmt: skip


def walking_tests(tests: Mapping[str, Any]) -> dict[str, Any]:
    """Those of ``tests`` that walk their operands, each counting its pass:
    ``select('in', big)`` walked ``big`` once per item, uncounted."""
    return {name: _walking_test(tests[name]) for name in WALKING_TESTS if name in tests}
