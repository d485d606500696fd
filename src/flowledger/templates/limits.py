"""Resource budgets for one render, and the checks that enforce them.

Every check runs *before* the allocation it guards whenever the size can be
predicted (repetition, joins, replacements, ranges, big integers). The
:class:`Meter` adds a second, per-render line of defence: many capped values
built in one expression (``[s*1000000, s*1000000, ...]``) still add up.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sized
from dataclasses import dataclass
from itertools import chain
from typing import Any

from jinja2.runtime import Undefined

from flowledger.errors import TemplateLimitError


@dataclass(frozen=True)
class TemplateLimits:
    """Caps that keep a template from exhausting memory or CPU."""

    #: Any string produced: repetition, join, concatenation, rendered output.
    max_string_length: int = 1_048_576
    #: Any list produced: repetition, join inputs, batches, materialised iterators.
    max_collection_length: int = 100_000
    #: Items one ``range()`` may yield.
    max_range: int = 10_000
    #: Size of integers produced by ``*`` and ``**``.
    max_integer_bits: int = 4_096
    #: Operations nested in one expression (filters chained, operators, brackets):
    #: compiling and evaluating recurse once per level.
    max_expression_depth: int = 100
    #: Tokens of one template (names, operators, literals; not the spaces between them):
    #: parsing and compiling cost per token, and a flat ``1 < 1 < ...`` has no depth.
    max_template_tokens: int = 20_000
    #: Steps one render may take, a step being one item handled by Python code (work
    #: that costs more or less is counted at its cost: see CALL_STEPS and below): bounds
    #: the time a render holds the worker's event loop to a fraction of a second.
    max_operations: int = 1_000_000
    #: The value one template builds (characters and items, repetitions counted); a
    #: template that only reads stored data (``{{ steps.a.output }}``) passes it as is.
    max_rendered_size: int = 1_048_576
    #: Sum of the sizes (characters or items) of everything one render produces; one
    #: budget for all the templates of a step's input.
    max_total_size: int = 16 * 1_048_576


#: A filter or test called by name on each item (``map('string')``, ``select('odd')``)
#: goes through Jinja's look-up and call: about ten steps' time. Counted as one step, a
#: chain of ``map`` filters within the cap held the event loop for seconds.
CALL_STEPS = 10
#: An attribute looked up on each item (``map(attribute='a')``, ``selectattr('a')``).
ATTRIBUTE_STEPS = 2
#: A key computed in Python for each item to sort or compare by (``sort``, ``max``).
KEY_STEPS = 4
#: A container sized for the budgets (Meter.measure: its items' types checked, its JSON
#: text spelled in C) or converted to JSON's shapes (convert.to_native): about ten
#: steps' time. A sort's input of 100,000 small objects took over a second to size.
CONTAINER_STEPS = 10
#: Items a pass in C walks in the time of one step: ``in``, ``==``, ``sum``, a slice.
#: Cheap each, but one template may repeat them by the thousand over a 100,000-item
#: list it reads.
C_ITEMS_PER_STEP = 16
#: Characters a pass in C over text walks in the time of one step: ``in``, ``count()``.
C_CHARS_PER_STEP = 128


def walk_steps(value: object) -> int:
    """The steps of a pass in C over ``value``: 0 for a scalar, and for a generator (its
    items are counted where they are made)."""
    kind = type(value)
    if kind is str:
        return len(value) // C_CHARS_PER_STEP  # type: ignore[arg-type]
    if kind is list or kind is dict or kind is tuple:
        return len(value) // C_ITEMS_PER_STEP  # type: ignore[arg-type]
    if isinstance(value, str):
        return len(value) // C_CHARS_PER_STEP
    if isinstance(value, Sized) and not isinstance(value, Undefined):
        return len(value) // C_ITEMS_PER_STEP  # a mapping's values(), a range (summed in C)
    return 0


class Meter:
    """Counts what one render has produced so far; one instance per render.

    Sizes are *real* sizes: a list holding the same 100,000-item list 100,000 times
    counts 10,000,000,000, not 100,000 (see :meth:`measure`), so repetition of shared
    references (``[[0]*100000]*100000``) is refused before it is built or walked.
    """

    __slots__ = ("_keep", "_sizes", "limit", "max_operations", "operations", "used")

    def __init__(self, limit: int, max_operations: int = 1_000_000) -> None:
        self.limit = limit
        self.used = 0
        self.max_operations = max_operations
        self.operations = 0
        self._sizes: dict[int, int] | None = None
        self._keep: list[object] = []

    def charge(self, size: int) -> None:
        self.used += size
        if self.used > self.limit:
            raise TemplateLimitError(
                f"the template produces more than {self.limit:,} characters and items "
                "in total; it is too expensive to evaluate"
            )

    @classmethod
    def for_limits(cls, limits: TemplateLimits) -> Meter:
        return cls(limits.max_total_size, limits.max_operations)

    def work(self, steps: int) -> None:
        """Count ``steps`` done item by item; refuse past ``max_operations``."""
        self.operations += steps
        if self.operations > self.max_operations:
            raise TemplateLimitError(
                f"the template takes more than {self.max_operations:,} steps item by item "
                "(filters applied to each item, sorting); it is too expensive to evaluate"
            )

    def walk(self, *values: object) -> None:
        """Count a pass in C over ``values`` (a container or text each; scalars are free)."""
        for value in values:
            steps = walk_steps(value)
            if steps:
                self.work(steps)

    def measure(self, value: object) -> int:
        """The size of ``value`` as JSON would spell it out: characters of strings, one per
        other scalar and per container, shared references counted each time they occur.

        Work is bounded: each container is walked once per render (sizes are remembered
        by identity, the objects kept alive so identities stay unique), the walk stops as
        soon as the size passes the render's limit, and it counts as steps: each container
        sized costs CONTAINER_STEPS, and its items a pass in C, or a step per four items
        walked in Python.
        """
        kind = type(value)
        if kind is str:
            return len(value) or 1  # type: ignore[arg-type]
        if kind not in _CONTAINERS and not _is_container(value):
            return 1 if kind is not int else int_size(value)  # type: ignore[arg-type]
        flat = _flat_size(value)
        if flat is not None:
            self.work(CONTAINER_STEPS + len(value) // C_ITEMS_PER_STEP)  # type: ignore[arg-type]
            return flat
        sizes = self._sizes
        if sizes is None:
            sizes = self._sizes = {}
        known = sizes.get(id(value))
        if known is not None:
            return known
        limit = self.limit
        frames: list[list[Any]] = [[value, _children(value), 1]]
        while True:
            frame = frames[-1]
            total: int = frame[2]
            for child in frame[1]:
                kind = type(child)
                if kind is str:
                    total += len(child) or 1
                elif kind in _SCALARS:
                    total += 1 if kind is not int else int_size(child)
                else:
                    size = sizes.get(id(child))
                    if size is None:
                        if kind not in _CONTAINERS and not _is_container(child):
                            total += 1
                            continue
                        size = _flat_size(child)
                        if size is not None:
                            self.work(CONTAINER_STEPS + len(child) // C_ITEMS_PER_STEP)
                            sizes[id(child)] = size
                            self._keep.append(child)
                            total += size
                            if total > limit:
                                raise _too_big(limit)
                            continue
                        frame[2] = total
                        frames.append([child, _children(child), 1])
                        break
                    total += size
                if total > limit:
                    raise _too_big(limit)
            else:
                frames.pop()
                self.work(CONTAINER_STEPS + len(frame[0]) // 4)
                sizes[id(frame[0])] = total
                self._keep.append(frame[0])
                if not frames:
                    return total
                frames[-1][2] += total
                if frames[-1][2] > limit:
                    raise _too_big(limit)


#: Integers below this magnitude count as one item; longer ones count their digits, as
#: JSON spells them (``max_integer_bits`` allows 1,233), or ``[2**4000] * 10000`` is
#: "10,000 items" and 12 million characters stored.
SHORT_INT = 10**18


def int_size(value: int) -> int:
    """An integer's size in the budgets: 1, or about its number of digits."""
    if -SHORT_INT < value < SHORT_INT:
        return 1
    return int(value.bit_length() * 0.30103) + 1  # log10(2): digits, without str()


def _too_big(limit: int) -> TemplateLimitError:
    return TemplateLimitError(
        f"the value would be larger than {limit:,} characters and items in total "
        "(counting every repetition); it is too expensive to build"
    )


_CONTAINERS = frozenset({list, tuple, dict})
_SCALARS = frozenset({int, float, bool, type(None)})
_FLAT_KINDS = _SCALARS | {str}


def _is_container(value: object) -> bool:
    return isinstance(value, Mapping | list | tuple)


def _flat_size(value: Any) -> int | None:
    """The size of a list, tuple or dict holding only scalars, at C speed (its compact
    JSON text's length, close to the walk's count); None when it holds containers."""
    kind = type(value)
    if kind is dict:
        if not set(map(type, value.values())) <= _FLAT_KINDS:
            return None
        if not set(map(type, value)) <= {str}:
            return None
    elif kind is list or kind is tuple:
        if not set(map(type, value)) <= _FLAT_KINDS:
            return None
    else:
        return None
    if _C_ENCODE is None:  # pragma: no cover - CPython has the C encoder
        return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    return sum(map(len, _C_ENCODE(value, 0)))


# The C encoder ``json.dumps`` builds on every call (about 85% of its time for a small
# object: a sort's input of 100,000 of them took seconds to size), built once; it keeps
# no state between calls (no circular-reference memo: a flat value cannot hold itself).
_C_MAKE_ENCODER: Any = getattr(json.encoder, "c_make_encoder", None)
_C_ENCODE: Any = (
    None
    if _C_MAKE_ENCODER is None
    else _C_MAKE_ENCODER(
        None, str, json.encoder.encode_basestring, None, ":", ",", False, False, True
    )
)


def _children(value: Any) -> Iterator[Any]:
    if isinstance(value, Mapping):
        return chain.from_iterable(value.items())
    return iter(value)


def check_rendered(limits: TemplateLimits, size: int) -> None:
    if size > limits.max_rendered_size:
        raise TemplateLimitError(
            f"the value would be {size:,} characters and items long (repetitions "
            f"counted); the limit is {limits.max_rendered_size:,}"
        )


def check_string(limits: TemplateLimits, length: int, what: str) -> None:
    if length > limits.max_string_length:
        raise TemplateLimitError(
            f"{what} would be {length:,} characters long; the limit is {limits.max_string_length:,}"
        )


def check_collection(limits: TemplateLimits, length: int, what: str) -> None:
    if length > limits.max_collection_length:
        raise TemplateLimitError(
            f"{what} would have {length:,} items; the limit is {limits.max_collection_length:,}"
        )


def check_sized(limits: TemplateLimits, value: object, length: int, what: str) -> None:
    """Check a predicted ``length`` with the cap that fits ``value``'s kind."""
    if isinstance(value, str):
        check_string(limits, length, what)
    else:
        check_collection(limits, length, what)


def check_bits(limits: TemplateLimits, bits: float) -> None:
    if bits > limits.max_integer_bits:
        raise TemplateLimitError(
            f"the result would be an integer of about {int(bits):,} bits; "
            f"the limit is {limits.max_integer_bits:,}"
        )


def check_finite(value: float) -> None:
    if not math.isfinite(value):
        raise TemplateLimitError("the result is too large for a number (float overflow)")
