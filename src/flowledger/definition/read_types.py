"""What a template read is, as far as the definition knows, and words for it.

:class:`ReadTypes` answers the type of what a read reads, as the step (or other
referrer) that renders it sees it: from ``input_schema``, a step's output type, a
loop's items or a loop's ``previous`` (definition.output_types); None where it is not
known, or where the read is refused by ReferenceChecker (another step's output not
recorded yet, a loop the referrer is not in). The functions below say a read and what
goes wrong with it, in the words the type rules (definition.typed_reads) use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowledger.definition.graph import StepPlace
from flowledger.definition.output_types import OutputTypes
from flowledger.definition.references import ReferenceChecker
from flowledger.definition.schemas import Schema, Takes, holds_decimal, walk
from flowledger.errors import format_path
from flowledger.templates.numeric_uses import MATCHING, NUMBER_TESTS, NumericUse, Read


class ReadTypes:
    def __init__(
        self,
        references: ReferenceChecker,
        outputs: OutputTypes,
        places: Mapping[str, StepPlace],
        input_schema: Mapping[str, Any] | None,
    ) -> None:
        self._references = references
        self._outputs = outputs
        self._places = places
        self._input_schema = input_schema
        #: Per step output and loop item, whether a Decimal is anywhere in it.
        self._decimals: dict[tuple[str, str], bool] = {}
        self._item_schemas: dict[tuple[str, str], Schema | None] = {}

    def read_schema(self, read: Read, referrer: str | None, only_decimal: bool) -> Schema | None:
        """The type of what ``read`` reads (None: unknown, or refused elsewhere). With
        ``only_decimal``, None too unless the output it reads holds a Decimal, so a
        definition without one pays a dictionary look-up per use."""
        ref, path = read.reference, read.segments
        if ref.root == "input" and path:
            # input_schema, which the input was checked against when the execution started;
            # a property of ``format: decimal`` is a Decimal as text, as an output's is
            if not self._input_schema or (only_decimal and not self._input_decimal()):
                return None
            found = walk(self._input_schema, path, "")
            return found.schema if found.ok else None
        if len(path) < 2:
            return None
        if ref.root in ("steps", "__steps__"):
            target = path[0]
            if not isinstance(target, str) or target not in self._places:
                return None
            key, root = ("steps", target), self._outputs.output_schema(target)
        elif ref.root == "loop" and path[1] == "item":
            if self._references.loop_problem(path[:2], referrer):
                return None
            key = ("loop", str(path[0]))
            if key not in self._item_schemas:
                self._item_schemas[key] = self._outputs.item_schema(key[1])
            root = self._item_schemas[key]
        elif ref.root == "loop" and path[1] == "previous" and len(path) > 2:
            if self._references.loop_problem(path[:3], referrer):
                return None
            # loop.<id>.previous.<body step>.<field>: read as steps.<body step>.output
            key = ("steps", str(path[2]))
            root = self._outputs.output_schema(key[1])
            path = (path[2], "output", *path[3:])
        else:
            return None
        if only_decimal:
            holds = self._decimals.get(key)
            if holds is None:
                holds = self._decimals[key] = holds_decimal(root)
            if not holds:
                return None
        if ref.root != "loop":  # reported elsewhere unless the output is readable here
            fields = ("output", "outputData") if ref.root == "__steps__" else ("output",)
            if path[1] not in fields or self._references.order_problem(key[1], referrer):
                return None
        result = walk(root, path[2:], "")
        return result.schema if result.ok else None

    def _input_decimal(self) -> bool:
        """Whether ``input_schema`` marks a Decimal anywhere (asked once)."""
        holds = self._decimals.get(("input", ""))
        if holds is None:
            holds = self._decimals[("input", "")] = holds_decimal(self._input_schema)
        return holds


def shown_read(read: Read) -> str:
    """A read as a message names it: ``input.xs``, ``the price of each item of input.xs``."""
    shown = format_path((read.reference.root, *read.reference.path))
    if read.item is None:
        return shown
    if not read.item:
        return f"each item of {shown}"
    return f"the {'.'.join(map(str, read.item))} of each item of {shown}"


def decimal_use_message(use: NumericUse, other: str | None) -> str:
    """What goes wrong where a Decimal (stored as text) is used as a number, and the fix."""
    read = use.read
    shown = format_path((read.reference.root, *read.reference.path))
    what = use.use
    if what in ("arithmetic", "comparison"):
        wrong = "arithmetic or a comparison would work on the text ('9.99' * 2 is '9.999.99')"
    elif what in MATCHING.values():
        against = f"with {other}, a number" if other else "with a number"
        wrong = (
            f"'{what}' compares text {against}, and text never equals a number "
            "('9.99' == 9.99 is false)"
        )
    elif what in ("max", "min", "sort"):
        wrong = f"'| {what}' would order it as text ('10.5' before '9.99')"
    elif what in NUMBER_TESTS:
        wrong = f"'is {what}' would fail on the text"
    else:  # abs, round, sum
        wrong = f"'| {what}' would fail on the text"
    if read.item is None:
        fix = f"convert it first, as ({shown} | float)"
    else:
        mapped = f" | map(attribute='{'.'.join(map(str, read.item))}')" if read.item else ""
        fix = f"convert them first, as ({shown}{mapped} | map('float') | list)"
    if what in MATCHING.values() and other is None:
        fix += ", or compare it with text ('9.99')"
    stored = "is a Decimal, which is stored as text to keep its digits"
    return f"{shown_read(read)} {stored}, so {wrong}; {fix}"


def type_use_message(read: Read, described: str, kind: str, wrong: str) -> str:
    """A read of text, a list or an object used as a number: what goes wrong, and the fix."""
    shown = format_path((read.reference.root, *read.reference.path))
    if kind == "string" and read.item is None:
        fix = f"convert it first, as ({shown} | int) or ({shown} | float)"
    elif kind == "string":
        mapped = f" | map(attribute='{'.'.join(map(str, read.item))}')" if read.item else ""
        fix = f"convert them first, as ({shown}{mapped} | map('float') | list)"
    elif kind == "array":
        fix = "use a number from it: its count (| length), its total (| sum), or an item"
    else:
        fix = "use a number inside it: one of its fields"
    return f"{shown_read(read)} is {described}, so {wrong}; {fix}"


def field_fix(shown: str, kinds: frozenset[str], takes: Takes) -> str:
    """How to give a field what it takes from a read of ``kinds`` (null left out)."""
    read = "{{ " + shown + " }}"
    if "array" in takes.kinds:
        if kinds == {"number"}:
            return f"for a count, write {{{{ range({shown}) | list }}}}"
        return f"for a list of this one value, write {{{{ [{shown}] }}}}"
    if takes.words == "a number" and kinds <= {"array", "object"}:
        return f"for its count, write {{{{ {shown} | length }}}}, or read a number inside it"
    if takes.words == "a number" and kinds == {"boolean"}:
        return f"for 1 or 0, write {{{{ {shown} | int }}}}"
    if takes.kinds == {"string"} or takes.kinds == {"string", "null"}:
        to_text = "string" if kinds == {"number"} else "tojson"  # "3"; "true", '{"a": 1}'
        return f'for its text, write {{{{ {shown} | {to_text} }}}}, or put it in text ("n={read}")'
    if "object" in takes.kinds:
        return "read an object here (a mapping of fields)"
    return f"read {takes.words} here"
