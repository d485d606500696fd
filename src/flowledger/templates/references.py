"""Static reads of the data store, and explanations of reads that failed.

``{{ steps.q.output.totalCount > 0 }}`` reads ``steps`` → ``q`` → ``output``
→ ``totalCount``; the definition validator checks such paths before a run.
When a render fails on a missing value, the same paths are walked against
the real context to say exactly which segment is missing. That walk only
happens after a failure, so the success path pays nothing for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, nodes
from jinja2.runtime import Undefined

from flowledger.errors import TemplateError, format_path
from flowledger.templates.convert import kind_of
from flowledger.templates.sandbox import MAPPING_METHODS, SAFE_STR_METHODS

Segment = str | int
_METHODS = SAFE_STR_METHODS | MAPPING_METHODS
_MAX_LISTED_FIELDS = 20


@dataclass(frozen=True)
class Reference:
    """A static read found in an expression, for validation before a run."""

    #: Top-level name: ``steps``, ``loop``, ``variables``, ... or any other free name.
    root: str
    #: Constant attribute / item segments after the root, up to the first dynamic one.
    path: tuple[Segment, ...]
    #: False when the chain went on with a dynamic segment (``steps[x]``).
    complete: bool


def _constant_key(node: nodes.Node) -> Segment | None:
    if isinstance(node, nodes.Const) and isinstance(node.value, str | int):
        return None if isinstance(node.value, bool) else node.value
    if isinstance(node, nodes.Neg) and isinstance(node.node, nodes.Const):
        value = node.node.value
        if isinstance(value, int) and not isinstance(value, bool):
            return -value  # items[-1]
    return None


def _follow_chain(node: nodes.Node) -> tuple[Reference | None, list[nodes.Node]]:
    """The reference a Getattr/Getitem/Name chain makes, and the sub-expressions left to visit."""
    segments: list[Segment] = []  # outermost first
    complete = True
    pending: list[nodes.Node] = []
    while True:
        if isinstance(node, nodes.Getattr):
            segments.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem):
            key = _constant_key(node.arg)
            if key is None:
                pending.append(node.arg)
                segments.clear()  # what follows a dynamic segment is unknown statically
                complete = False
            else:
                segments.append(key)
            node = node.node
        elif isinstance(node, nodes.Name):
            return Reference(node.name, tuple(reversed(segments)), complete), pending
        else:
            pending.append(node)  # e.g. (a|first).b: the reads are inside
            return None, pending


def collect_references(
    expressions: Iterable[nodes.Expr], ignore: frozenset[str]
) -> tuple[Reference, ...]:
    """Every static read in ``expressions`` in evaluation order, without repeats."""
    found: dict[Reference, None] = {}
    stack: list[nodes.Node] = []
    stack.extend(reversed(tuple(expressions)))
    while stack:
        node = stack.pop()
        if isinstance(node, nodes.Getattr | nodes.Getitem | nodes.Name):
            reference, pending = _follow_chain(node)
            if reference is not None and reference.root not in ignore:
                found[reference] = None
            stack.extend(reversed(pending))
            continue
        children = list(node.iter_child_nodes())
        if isinstance(node, nodes.Call):
            callee = node.node
            if isinstance(callee, nodes.Getattr) and callee.attr in _METHODS:
                # x.lower() / x.get('a'): the method is not part of the data path
                children = [callee.node if child is callee else child for child in children]
        stack.extend(reversed(children))
    return tuple(found)


def plain_read(expr: nodes.Node) -> Reference | None:
    """The reference ``expr`` is, when it is nothing but a constant read such as
    ``steps.a.output``; else None."""
    reference, pending = _follow_chain(expr)
    return reference if reference is not None and reference.complete and not pending else None


def chain_reference(expr: nodes.Expr) -> bool:
    """True when ``expr`` is nothing but a constant read such as ``steps.a.output``."""
    return plain_read(expr) is not None


def _field_list(mapping: Mapping[Any, Any]) -> str:
    names = sorted(str(key) for key in mapping)
    shown = ", ".join(names[:_MAX_LISTED_FIELDS])
    if len(names) > _MAX_LISTED_FIELDS:
        shown += f", … ({len(names) - _MAX_LISTED_FIELDS} more)"
    return shown


def _missing_segment(full: str, walked: tuple[Segment, ...], segment: Segment, parent: Any) -> str:
    """Why ``full`` (the whole path the template reads) does not exist: ``segment`` of
    ``walked`` is missing, ``parent`` being what ``walked`` holds."""
    where = format_path(walked)
    why_missing = getattr(parent, "why_missing", None)
    if callable(why_missing):  # a mapping that says why it lacks a key (secrets)
        return f"{full} does not exist: {why_missing(segment)}"
    if isinstance(parent, Mapping):
        fields = _field_list(parent)
        if len(walked) == 1 and full == format_path((*walked, segment)):
            return f"{full} does not exist ({where}: {fields or 'empty'})"
        listed = f"fields: {fields}" if fields else f"{where} is empty"
        return f"{full} does not exist: {where} has no field {segment!r} ({listed})"
    if isinstance(parent, list | tuple):
        if isinstance(segment, int):
            count = "1 item" if len(parent) == 1 else f"{len(parent)} items"
            return f"{full} does not exist: {where} has {count}"
        return f"{full} does not exist: {where} is a list, not an object"
    wanted = "a list" if isinstance(segment, int) else "an object"
    return f"{full} does not exist: {where} is {kind_of(parent)}, not {wanted}"


def explain_reference(
    reference: Reference, context: Mapping[str, Any], environment: Environment
) -> str | None:
    """Why ``reference`` cannot be read from ``context``, or None when it can."""
    if reference.root not in context:
        return f"{reference.root} does not exist (available names: {_field_list(context)})"
    value = context[reference.root]
    walked: tuple[Segment, ...] = (reference.root,)
    for segment in reference.path:
        try:
            if isinstance(segment, str):
                child = environment.getattr(value, segment)
            else:
                child = environment.getitem(value, segment)
        except TemplateError:
            return None  # refused, not missing: the original error says so
        if isinstance(child, Undefined):
            full = format_path((reference.root, *reference.path))
            return _missing_segment(full, walked, segment, value)
        value = child
        walked = (*walked, segment)
    return None


def explain_missing(
    references: Iterable[Reference], context: Mapping[str, Any], environment: Environment
) -> str | None:
    """The first reference that cannot be read, explained; None if all resolve."""
    for reference in references:
        message = explain_reference(reference, context, environment)
        if message is not None:
            return message
    return None
