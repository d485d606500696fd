"""Where an expression uses a read as a number, found from its text alone.

A value may be kept as text that looks like a number (a Decimal is stored as
``"9.99"`` to keep its digits). Used as a number it goes wrong, silently or at run
time: ``price * 2`` repeats the text, ``price == 9.99`` and ``price in [9.99]`` are
false, ``[price, '10.5'] | max`` orders text, ``price | round`` fails. This module
lists such uses, each with the read it applies to; the definition checker, which
knows the reads' types, refuses those whose read is such text. Nothing here knows
types, so a use is recorded wherever one may be, and a read of unknown type passes.

A read may reach a use through a few steps of the expression: a conditional
(``a if c else b``), ``default``, a list literal (``[a, 1] | sum``), the item of a
list (``xs | first``, ``xs | map(attribute='price') | sum``). Through a conditional
or ``default`` it may not be the value used at all: such a read is not ``sure``.

An arithmetic operator or an ordering also records what stands on its other side when
that is certain (a number, or a plain read), so that text used with a number
(``name + 1``, ``name * 2``, ``name < 5``) can be told from text used with text; an
equality, whether its other side is surely a number (``name == 5`` is always false).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from jinja2 import nodes

from flowledger.templates.references import Reference, Segment, plain_read


@dataclass(frozen=True)
class Read:
    """A value an expression reads: ``reference`` itself, or with ``item`` set, any
    item of the list ``reference`` at that path in the item (``()``: the item)."""

    reference: Reference
    item: tuple[Segment, ...] | None = None
    #: False when reached through a conditional or ``default``: the expression may use
    #: another value instead (``(a if c else 0) - 1``).
    sure: bool = True

    @property
    def segments(self) -> tuple[Segment, ...]:
        """The path in the data store, a list's item being its index 0."""
        if self.item is None:
            return self.reference.path
        return (*self.reference.path, 0, *self.item)


@dataclass(frozen=True)
class NumericUse:
    """``read`` used as a number by ``use``: ``"arithmetic"``, ``"comparison"`` (an
    ordering), one of :data:`MATCHING` (``==``, ``!=``, ``in``, ``not in``: with a
    number, or with ``other`` when that read is one), or the filter or test it goes
    through (``"round"``, ``"even"``).

    For ``"arithmetic"`` and ``"comparison"``, ``other`` is the plain read on the other
    side and ``number`` whether that side is surely a number (neither: not known);
    ``operator`` is the arithmetic operator (``"-"``, or ``"unary -"`` for ``-a``). For
    ``==`` and ``!=``, ``number`` says the other side is surely a number (``other`` None
    alone says only that one may be: ``a == (5 if c else 'x')``)."""

    read: Read
    use: str
    other: Read | None = None
    operator: str = ""
    number: bool = False


class _Number:
    """A value that is surely a number (``9.99``, ``-1``, ``x | float``)."""


_NUMBER = _Number()
_Value = Read | _Number

_ARITHMETIC = frozenset(("+", "-", "*", "/", "//", "%", "**"))
_ORDERING = frozenset(("lt", "lteq", "gt", "gteq"))
#: The comparisons that hold or fail alike for number text and a number, as written.
MATCHING = {"eq": "==", "ne": "!=", "in": "in", "notin": "not in"}
_ORDERING_TESTS = frozenset(
    ("<", "lt", "lessthan", "<=", "le", ">", "gt", "greaterthan", ">=", "ge")
)
_EQUALITY_TESTS = {"==": "==", "eq": "==", "equalto": "==", "!=": "!=", "ne": "!="}
NUMBER_TESTS = frozenset(("divisibleby", "even", "odd"))
#: Jinja's filters that take a number (their input fails as text, or with a list of
#: them, orders it as text); ``int`` and ``float`` convert, so they are fine.
NUMBER_FILTERS = frozenset(("abs", "round"))
LIST_FILTERS = frozenset(("sum", "max", "min", "sort"))
#: Where these take ``attribute`` when it is given by position.
_ATTRIBUTE_ARG = {"sum": 0, "max": 1, "min": 1, "sort": 2}
_NUMBER_RESULTS = frozenset(("int", "float", "length", "count", "abs", "round", "sum"))
#: Filters whose result holds (some of) their input's items.
_SAME_ITEMS = frozenset(
    ("list", "sort", "reverse", "unique", "select", "reject", "selectattr", "rejectattr")
)
_AN_ITEM = frozenset(("first", "last", "max", "min"))


def collect_numeric_uses(expressions: Iterable[nodes.Expr]) -> tuple[NumericUse, ...]:
    """Every use of a read as a number in ``expressions``, without repeats."""
    found: dict[NumericUse, None] = {}
    for expr in expressions:
        for node in (expr, *expr.find_all(_USING)):  # find_all skips expr itself
            for use in _uses(node):
                found[use] = None
    return tuple(found)


_USING = (nodes.BinExpr, nodes.UnaryExpr, nodes.Compare, nodes.Test, nodes.Filter)


def _uses(node: nodes.Node) -> Iterator[NumericUse]:
    if isinstance(node, nodes.BinExpr) and node.operator in _ARITHMETIC:
        yield from _paired(node.left, node.right, "arithmetic", node.operator)
    elif isinstance(node, nodes.UnaryExpr) and node.operator in _ARITHMETIC:
        yield from _with(_values(node.node), "arithmetic", None, f"unary {node.operator}")
    elif isinstance(node, nodes.Compare):
        left = node.expr
        for operand in node.ops:  # a < b < c is a < b and b < c
            yield from _compared(left, operand.op, operand.expr)
            left = operand.expr
    elif isinstance(node, nodes.Test):
        yield from _tested(node.name, _values(node.node), node.args, node.node)
    elif isinstance(node, nodes.Filter) and node.node is not None:
        yield from _filtered(node)


def _compared(left: nodes.Expr, op: str, right: nodes.Expr) -> Iterator[NumericUse]:
    if op in _ORDERING:
        yield from _paired(left, right, "comparison", "")
    elif op in ("eq", "ne"):
        yield from _equal(_values(left), _values(right), MATCHING[op], left, right)
    elif op in ("in", "notin"):
        yield from _member(_values(left), _items(right), MATCHING[op])


def _paired(left: nodes.Expr, right: nodes.Expr, use: str, op: str) -> Iterator[NumericUse]:
    """The reads of either side of ``left op right``, each with what the other side surely is."""
    yield from _with(_values(left), use, right, op)
    yield from _with(_values(right), use, left, op)


def _with(
    values: list[_Value], use: str, other_side: nodes.Node | None, op: str
) -> Iterator[NumericUse]:
    other = _sure(other_side)
    read = other if isinstance(other, Read) else None
    for value in values:
        if isinstance(value, Read):
            yield NumericUse(value, use, read, op, other is _NUMBER)


def _tested(
    name: str, subjects: list[_Value], args: list[nodes.Expr], subject: nodes.Node | None = None
) -> Iterator[NumericUse]:
    """``x is gt 5`` (``subject``: ``x``), or each item of ``xs | select('gt', 5)``."""
    other = _values(args[0]) if args else []
    if name in _ORDERING_TESTS:
        yield from _with(subjects, "comparison", args[0] if args else None, "")
        yield from _with(other, "comparison", subject, "")
    elif name in _EQUALITY_TESTS:
        yield from _equal(
            subjects, other, _EQUALITY_TESTS[name], subject, args[0] if args else None
        )
    elif name == "in" and args:
        yield from _member(subjects, _items(args[0]), "in")
    elif name in NUMBER_TESTS:
        yield from _as_number(subjects, name)


def _filtered(node: nodes.Filter) -> Iterator[NumericUse]:
    name = node.name
    if name in NUMBER_FILTERS:
        yield from _as_number(_values(node.node), name)
    elif name in LIST_FILTERS:
        yield from _as_number(_values(node.node), name)  # price | max: its characters
        attribute = _attribute(node, _ATTRIBUTE_ARG[name])
        if attribute is not None:
            yield from _as_number(_at(_items(node.node), attribute), name)
    elif name == "map" and node.args and _attribute(node, None) == ():
        mapped = _constant_text(node.args[0])  # map('round', precision=1)
        if mapped in NUMBER_FILTERS or mapped in LIST_FILTERS:
            yield from _as_number(_items(node.node), mapped)
    elif name in ("select", "reject") and node.args:
        test = _constant_text(node.args[0])
        if test is not None:
            yield from _tested(test, _items(node.node), node.args[1:])
    elif name in ("selectattr", "rejectattr") and len(node.args) > 1:
        attribute = _attribute_path(node.args[0])
        test = _constant_text(node.args[1])
        if attribute is not None and test is not None:
            yield from _tested(test, _at(_items(node.node), attribute), node.args[2:])


def _as_number(values: list[_Value], use: str) -> Iterator[NumericUse]:
    for value in values:
        if isinstance(value, Read):
            yield NumericUse(value, use)


def _equal(
    lefts: list[_Value],
    rights: list[_Value],
    op: str,
    left_node: nodes.Node | None = None,
    right_node: nodes.Node | None = None,
) -> Iterator[NumericUse]:
    """``a == b``: wrong where one is number text and the other a number, or one is
    surely text (a list, an object) and the other surely a number (``number``)."""
    left_number, right_number = _sure(left_node) is _NUMBER, _sure(right_node) is _NUMBER
    for left in lefts:
        for right in rights:
            for one, other, number in ((left, right, right_number), (right, left, left_number)):
                if isinstance(one, Read):
                    read = other if isinstance(other, Read) else None
                    yield NumericUse(one, op, read, number=number)


def _member(elements: list[_Value], items: list[_Value], op: str) -> Iterator[NumericUse]:
    """``a in xs``: wrong where ``a`` is number text and the items numbers, or the
    other way round."""
    for element in elements:
        for item in items:
            for one, other in ((element, item), (item, element)):
                if isinstance(one, Read):
                    yield NumericUse(one, op, other if isinstance(other, Read) else None)


def _sure(node: nodes.Node | None) -> _Value | None:
    """What ``node`` surely is: a number, a plain read, or None (not known)."""
    if isinstance(node, nodes.Getattr | nodes.Getitem | nodes.Name):
        reference = plain_read(node)
        return Read(reference) if reference is not None else None
    if isinstance(node, nodes.Const | nodes.Neg | nodes.Pos):
        return _NUMBER if _values(node) == [_NUMBER] else None
    if isinstance(node, nodes.Filter) and node.name in _NUMBER_RESULTS:
        return _NUMBER
    return None


def _values(node: nodes.Node | None) -> list[_Value]:
    """What ``node`` may evaluate to, as far as it is a read or surely a number."""
    if node is None:
        return []
    if isinstance(node, nodes.Getattr | nodes.Getitem | nodes.Name):
        reference = plain_read(node)
        return [Read(reference)] if reference is not None else []
    if isinstance(node, nodes.Const):
        number = isinstance(node.value, int | float) and not isinstance(node.value, bool)
        return [_NUMBER] if number else []
    if isinstance(node, nodes.Neg | nodes.Pos):
        return [_NUMBER] if _values(node.node) == [_NUMBER] else []
    if isinstance(node, nodes.CondExpr):
        return _maybe([*_values(node.expr1), *_values(node.expr2)])
    if isinstance(node, nodes.Filter):
        if node.name in _NUMBER_RESULTS:
            return [_NUMBER]
        if node.name in ("default", "d"):
            return _maybe([*_values(node.node), *_values(node.args[0] if node.args else None)])
        if node.name in _AN_ITEM and not node.args and not node.kwargs:
            return _items(node.node)
    return []


def _maybe(values: list[_Value]) -> list[_Value]:
    """``values`` of which the expression uses one or another (a conditional, ``default``)."""
    return [replace(v, sure=False) if isinstance(v, Read) else v for v in values]


def _items(node: nodes.Node | None) -> list[_Value]:
    """What the items of the list ``node`` may be."""
    if node is None:
        return []
    if isinstance(node, nodes.List | nodes.Tuple):
        return [value for item in node.items for value in _values(item)]
    if isinstance(node, nodes.BinExpr) and node.operator == "+":  # xs + [1]
        return [*_items(node.left), *_items(node.right)]
    if isinstance(node, nodes.CondExpr):
        return _maybe([*_items(node.expr1), *_items(node.expr2)])
    if isinstance(node, nodes.Filter):
        if node.name in _SAME_ITEMS:
            return _items(node.node)
        if node.name in ("default", "d"):
            return _maybe([*_items(node.node), *_items(node.args[0] if node.args else None)])
        if node.name == "map":
            attribute = _attribute(node, None)
            if attribute:
                return _at(_items(node.node), attribute)
            mapped = _constant_text(node.args[0]) if node.args else None
            return [_NUMBER] if mapped in _NUMBER_RESULTS else []
        return []
    # A plain read is a list of unknown items, each at index 0 of it.
    return [
        Read(v.reference, (), v.sure)
        for v in _values(node)
        if isinstance(v, Read) and v.item is None
    ]


def _at(values: list[_Value], attribute: tuple[Segment, ...]) -> list[_Value]:
    """The field ``attribute`` of each value (``map(attribute='price')``)."""
    if not attribute:
        return values
    found: list[_Value] = []
    for value in values:
        if not isinstance(value, Read):
            continue  # a number has no fields
        if value.item is None:
            path = (*value.reference.path, *attribute)
            found.append(Read(Reference(value.reference.root, path, True), None, value.sure))
        else:
            found.append(Read(value.reference, (*value.item, *attribute), value.sure))
    return found


def _attribute(node: nodes.Filter, position: int | None) -> tuple[Segment, ...] | None:
    """The path ``attribute`` names (``()`` without one), or None when it is not constant."""
    given: nodes.Expr | None = None
    for keyword in node.kwargs:
        if keyword.key == "attribute":
            given = keyword.value
    if given is None and position is not None and len(node.args) > position:
        given = node.args[position]
    if given is None:
        return ()
    return _attribute_path(given)


def _attribute_path(node: nodes.Node) -> tuple[Segment, ...] | None:
    """``'a.0.b'`` as Jinja's attribute getters read it: ``('a', 0, 'b')``."""
    if isinstance(node, nodes.Const) and isinstance(node.value, int):
        return None if isinstance(node.value, bool) else (node.value,)
    text = _constant_text(node)
    if text is None:
        return None
    return tuple(int(part) if part.isdigit() else part for part in text.split("."))


def _constant_text(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return node.value
    return None
