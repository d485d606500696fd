"""Reads of ``trigger.previousEntity`` that fail on the events where it is null.

An entity event's trigger data holds ``previousEntity``, the entity before the write: an
object on ``updated`` events, null on ``created`` and ``deleted`` ones. An entity
trigger's ``when`` that reads a field of it (``trigger.previousEntity.payload.Status``)
fails on those events, and the event starts nothing. This module finds such reads in a
template, unless they are guarded where they are read:

* on the right of ``and`` after a test that holds only on updates
  (``trigger.previousEntity and …``, ``trigger.eventType == 'updated' and …``,
  ``trigger.previousEntity is not none and …``), or of ``or`` after one that holds on
  every other event (``trigger.eventType == 'created' or …``);
* in the branch of ``a if test else b`` that such a test selects;
* under ``| default(…)`` or ``is defined`` / ``is undefined`` / ``is none``, which take a
  missing value without failing.

The guards are what a person writes; anything cleverer counts as unguarded (refused in a
new definition, so the author writes one of the forms above).

A step's input (and its own ``when``) reads the same trigger data, on the events that
start the workflow (its entity triggers' events, as their ``when`` narrows them). There
a read is also guarded by what decides whether the step runs at all, which
:func:`narrowed` tells: the step's ``when``, the ``then``/``else`` branch of a
``sys.condition`` it follows, and those of the steps it runs after.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import jinja2
from jinja2 import nodes

from flowledger.errors import format_path

Events = frozenset[str]
ALL: Events = frozenset(("created", "updated", "deleted"))
#: The events whose trigger data has ``previousEntity: null``.
NULL_ON: Events = frozenset(("created", "deleted"))
_SAFE_FILTERS = frozenset(("default", "d"))
_SAFE_TESTS = frozenset(("defined", "undefined", "none"))


@dataclass(frozen=True)
class UnguardedRead:
    #: The path read, as written (``trigger.previousEntity.payload.Status``).
    path: str
    #: The trigger's events on which it fails, in a fixed order.
    events: tuple[str, ...]


def unguarded_reads(source: str, events: Iterable[str]) -> list[UnguardedRead]:
    """Each read of a field of ``trigger.previousEntity`` in the template ``source`` that
    fails on one of ``events`` (the trigger's), first occurrence first."""
    worlds = frozenset(events) & ALL
    if not worlds & NULL_ON or "previousEntity" not in source:
        return []
    try:
        tree = jinja2.Environment().parse(source)  # noqa: S701 (parsed, never rendered)
    except jinja2.TemplateSyntaxError:  # reported by the template's own compile
        return []
    found: dict[str, Events] = {}
    for output in tree.find_all(nodes.Output):
        for expr in output.nodes:
            if not isinstance(expr, nodes.TemplateData):
                _walk(expr, worlds, found)
    return [
        UnguardedRead(path, tuple(e for e in ("created", "deleted") if e in failing))
        for path, failing in found.items()
    ]


def narrowed(source: str, events: Iterable[str], truthy: bool = True) -> Events:
    """The events of ``events`` on which the template ``source``, one ``{{ … }}``, can be
    truthy (with ``truthy`` False: falsy); all of them when it tells nothing."""
    worlds = frozenset(events) & ALL
    if "trigger" not in source:
        return worlds
    try:
        tree = jinja2.Environment().parse(source)  # noqa: S701 (parsed, never rendered)
    except jinja2.TemplateSyntaxError:  # reported by the template's own compile
        return worlds
    exprs = [
        expr
        for output in tree.find_all(nodes.Output)
        for expr in output.nodes
        if not isinstance(expr, nodes.TemplateData)
    ]
    return worlds & _narrow(exprs[0], truthy) if len(exprs) == 1 else worlds


def _walk(node: nodes.Node, worlds: Events, found: dict[str, Events]) -> None:
    """Visit ``node`` knowing the event is one of ``worlds``."""
    if not worlds & NULL_ON:
        return  # only updates get here: previousEntity is an object
    if isinstance(node, nodes.And):
        _walk(node.left, worlds, found)
        _walk(node.right, worlds & _narrow(node.left, True), found)
    elif isinstance(node, nodes.Or):
        _walk(node.left, worlds, found)
        _walk(node.right, worlds & _narrow(node.left, False), found)
    elif isinstance(node, nodes.CondExpr):
        _walk(node.test, worlds, found)
        _walk(node.expr1, worlds & _narrow(node.test, True), found)
        if node.expr2 is not None:
            _walk(node.expr2, worlds & _narrow(node.test, False), found)
    elif isinstance(node, nodes.Filter | nodes.Test) and _tolerant(node):
        for argument in (*node.args, *(kw.value for kw in node.kwargs)):
            _walk(argument, worlds, found)
        _walk_subscripts(node.node, worlds, found)
    elif isinstance(node, nodes.Getattr | nodes.Getitem | nodes.Name):
        segments, dynamic = _chain(node)
        if _previous_field(segments):
            path = format_path([s if s is not None else "[…]" for s in segments])
            found[path] = found.get(path, frozenset()) | (worlds & NULL_ON)
        for part in dynamic:
            _walk(part, worlds, found)
    else:
        for child in node.iter_child_nodes():
            _walk(child, worlds, found)


def _tolerant(node: nodes.Filter | nodes.Test) -> bool:
    """``chain | default(…)``, ``chain is defined``: a missing value does not fail."""
    names = _SAFE_FILTERS if isinstance(node, nodes.Filter) else _SAFE_TESTS
    inner = node.node
    return node.name in names and isinstance(inner, nodes.Getattr | nodes.Getitem | nodes.Name)


def _walk_subscripts(node: nodes.Node | None, worlds: Events, found: dict[str, Events]) -> None:
    if node is None:
        return
    _, dynamic = _chain(node)
    for part in dynamic:
        _walk(part, worlds, found)


def _chain(node: nodes.Node) -> tuple[list[str | int | None], list[nodes.Node]]:
    """The segments of a read chain from its root name (None: a dynamic segment), and the
    sub-expressions it holds (dynamic keys, a base that is not a name)."""
    segments: list[str | int | None] = []
    dynamic: list[nodes.Node] = []
    while True:
        if isinstance(node, nodes.Getattr):
            segments.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem):
            arg = node.arg
            constant = isinstance(arg, nodes.Const) and isinstance(arg.value, str | int)
            segments.append(arg.value if constant else None)  # type: ignore[attr-defined]
            if not constant:
                dynamic.append(arg)
            node = node.node
        elif isinstance(node, nodes.Name):
            segments.append(node.name)
            return list(reversed(segments)), dynamic
        else:
            dynamic.append(node)
            return [], dynamic


def _previous_field(segments: Sequence[str | int | None]) -> bool:
    """``trigger.previousEntity.<something>``: a read through previousEntity."""
    return len(segments) > 2 and segments[0] == "trigger" and segments[1] == "previousEntity"


def _is_previous(node: nodes.Node) -> bool:
    segments, dynamic = _chain(node)
    return not dynamic and list(segments) == ["trigger", "previousEntity"]


def _event_names(node: nodes.Node) -> Events | None:
    """The event names a constant (``'updated'``) or a list of them names."""
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return frozenset((node.value,))
    if isinstance(node, nodes.List | nodes.Tuple):
        names = [item.value for item in node.items if isinstance(item, nodes.Const)]
        if len(names) == len(node.items) and all(isinstance(n, str) for n in names):
            return frozenset(names)
    return None


def _narrow(node: nodes.Node, truthy: bool) -> Events:
    """The events on which ``node`` can be truthy (or falsy): ALL when it tells nothing."""
    if isinstance(node, nodes.Not):
        return _narrow(node.node, not truthy)
    if isinstance(node, nodes.And):
        left, right = _narrow(node.left, True), _narrow(node.right, True)
        if truthy:
            return left & right
        return _narrow(node.left, False) | (left & _narrow(node.right, False))
    if isinstance(node, nodes.Or):
        left, right = _narrow(node.left, False), _narrow(node.right, False)
        if not truthy:
            return left & right
        return _narrow(node.left, True) | (left & _narrow(node.right, True))
    if _is_previous(node):  # an entity is a non-empty object, null is falsy
        return frozenset(("updated",)) if truthy else NULL_ON
    if isinstance(node, nodes.Test) and node.name == "none" and _is_previous(node.node):
        return NULL_ON if truthy else frozenset(("updated",))
    if isinstance(node, nodes.Compare) and len(node.ops) == 1:
        return _narrow_compare(node.expr, node.ops[0], truthy)
    return ALL


def _narrow_compare(left: nodes.Node, operand: nodes.Operand, truthy: bool) -> Events:
    op, right = operand.op, operand.expr
    if op in ("eq", "ne") and _is_event_type(right):
        left, right = right, left  # 'updated' == trigger.eventType
    positive = truthy if op in ("eq", "in") else not truthy
    if op in ("eq", "ne") and _is_previous(left) and _is_none(right):
        return NULL_ON if positive else frozenset(("updated",))
    if not _is_event_type(left) or op not in ("eq", "ne", "in", "notin"):
        return ALL
    names = _event_names(right)
    if names is None or (op in ("eq", "ne") and not isinstance(right, nodes.Const)):
        return ALL
    return ALL & names if positive else ALL - names


def _is_event_type(node: nodes.Node) -> bool:
    segments, dynamic = _chain(node)
    return not dynamic and list(segments) == ["trigger", "eventType"]


def _is_none(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Const) and node.value is None


def message(read: UnguardedRead, in_step: bool = False) -> str:
    """What fails, why, and how to guard it; ``in_step``: the read is in a step's input
    or ``when``, not in a trigger's ``when``."""
    on = " and ".join(read.events)
    if in_step:
        fails = "so the step would fail"
        instead = (
            "run the step on updates only (when: \"{{ trigger.eventType == 'updated' }}\"), "
            f"or leave {on} out of the trigger's events"
        )
    else:
        fails = "so the when fails and the workflow does not run"
        instead = f"or leave {on} out of events"
    return (
        f"reads {read.path}, which fails on {on} events: previousEntity is null on them "
        f"(it is the entity before an update), {fails}; guard the read, as in "
        "{{ trigger.eventType == 'updated' and … }} or {{ trigger.previousEntity and … }}, "
        f"give it a default ({read.path} | default(none)), {instead}"
    )
