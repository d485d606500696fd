"""Rules on reads whose type the definition knows.

:class:`TypedReads` is the checker the compiler uses: ReferenceChecker's names, order and
scope of each read, and these rules, which ask ReadTypes the type of a read (from
``input_schema``, an output model or ``output_schema``, a loop's items). A Decimal, which
is text (to keep its digits), used as a number (``price * 2``, ``price == 9.99``); text,
a list or an object used where that fails or goes wrong (``name - 1``, ``input.s == 5``,
always false, ``input.s * input.t``); an input field given one bare read of a type it
refuses; and sys.set_variable's ``increment`` by a value that is surely not a number.
They hold for new definitions only (definition.strictness): a stored version compiles
as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowledger.definition.output_types import OutputTypes
from flowledger.definition.read_types import (
    ReadTypes,
    decimal_use_message,
    field_fix,
    shown_read,
    type_use_message,
)
from flowledger.definition.references import ReadContext, ReferenceChecker
from flowledger.definition.schemas import (
    Schema,
    Takes,
    describe,
    is_decimal_text,
    is_number,
    json_kinds,
)
from flowledger.definition.strictness import checking_new
from flowledger.errors import format_path
from flowledger.templates import Reference, Template
from flowledger.templates.compiler import BareTemplate
from flowledger.templates.numeric_uses import MATCHING, NUMBER_TESTS, NumericUse, Read

#: What sys.set_variable's ``increment`` adds, said where its value is not that.
_ADDS = "op increment adds numbers only, so the step would fail at run time"
_MATCHING_USES = frozenset(MATCHING.values())
#: The uses that fail (or go wrong) on text, a list or an object.
_TYPE_USES = frozenset(("arithmetic", "comparison", "round", "abs", "sum", *NUMBER_TESTS))


class TypedReads:
    def __init__(self, context: ReadContext, unchecked: set[str] | None = None) -> None:
        outputs = OutputTypes(context.places, context.registry, unchecked)
        self._references = ReferenceChecker(context, outputs)
        self._reads = ReadTypes(self._references, outputs, context.places, context.input_schema)

    def iteration_end(self, loop_id: str) -> str:
        """See ReferenceChecker.iteration_end."""
        return self._references.iteration_end(loop_id)

    def per_item(self, step_id: str) -> str:
        """See ReferenceChecker.per_item."""
        return self._references.per_item(step_id)

    def check(
        self, template: Template, referrer: str | None, report: Callable[[str], None]
    ) -> None:
        self._references.check(template, referrer, report)
        if not checking_new() or not template.numeric_uses:
            return
        said: set[str] = set()  # a read used alike twice (a * 2 + a * 3) is said once
        for use in template.numeric_uses:
            message = self._numeric_problem(use, referrer) or self._type_problem(use, referrer)
            if message and message not in said:
                said.add(message)
                report(message)
        said = set()
        pairs: set[frozenset[Read]] = set()  # a * b: said of one of them
        for use in template.numeric_uses:
            pair = frozenset((use.read, use.other)) if use.other is not None else None
            if pair in pairs:
                continue
            message = self._mismatch_problem(use, referrer)
            if message and message not in said:
                said.add(message)
                report(message)
                if pair is not None:
                    pairs.add(pair)

    def _numeric_problem(self, use: NumericUse, referrer: str | None) -> str | None:
        """A Decimal output is stored as text (to keep its digits): used as a number it
        goes wrong. ``price * 2`` repeats the text ("9.999.99"), ``a > b`` compares it as
        text, ``price == 9.99`` and ``price in [9.99]`` are false, ``[price, '10.5'] |
        max`` orders text, ``price | round`` fails at run time. A read of unknown type
        passes."""
        schema = self._reads.read_schema(use.read, referrer, only_decimal=True)
        if schema is None or not is_decimal_text(schema):
            return None
        if use.other is None or use.use not in _MATCHING_USES:
            return decimal_use_message(use, None)
        other = self._reads.read_schema(use.other, referrer, only_decimal=False)
        if other is None or not is_number(other):
            return None  # Decimal with Decimal, or with text: both are text
        return decimal_use_message(use, shown_read(use.other))

    def _type_problem(self, use: NumericUse, referrer: str | None) -> str | None:
        """A read whose type is surely text, a list or an object, used where that fails
        or goes wrong at run time: ``name - 1`` fails, ``name * 2`` repeats the text,
        ``name < 5`` and ``items | round`` fail. Text with text (``a + b``, ``a < b``)
        passes, and so does a read of unknown type, a union that allows a number, or
        one that may not be the value used (``(a if c else 0) - 1``)."""
        if use.use not in _TYPE_USES or not use.read.sure:
            return None
        schema = self._reads.read_schema(use.read, referrer, only_decimal=False)
        if schema is None or is_decimal_text(schema):  # a Decimal: the rule above
            return None
        kinds = json_kinds(schema)
        present = (kinds or frozenset()) - {"null"}
        if len(present) != 1:
            return None
        kind = next(iter(present))
        if kind not in ("string", "array", "object"):
            return None  # a number, or a boolean (True - 1 is 0)
        wrong = self._what_goes_wrong(use, kind, referrer)
        if wrong is None:
            return None
        return type_use_message(use.read, describe(schema), kind, wrong)

    def _what_goes_wrong(self, use: NumericUse, kind: str, referrer: str | None) -> str | None:
        """What ``use`` does to a value of ``kind`` (text, a list, an object), or None
        when it may be fine."""
        if use.use == "arithmetic":
            op = use.operator
            shown = f"'{op[-1]}' before it" if op.startswith("unary") else f"'{op}'"
            if kind == "object" or op not in ("+", "*"):
                return f"{shown} would fail on it at run time"
            if not self._surely_number(use, referrer):
                return None  # 'a' + 'b' joins text, [1] + xs lists, [0] * 3 repeats
            if op == "+":
                example = "'a' + 1" if kind == "string" else "[1] + 1"
                return f"'+' with a number would fail at run time ({example} is an error)"
            if kind == "string":
                return "'*' with a number would repeat the text ('ab' * 2 is 'abab')"
            return None
        if use.use == "comparison":
            if not self._surely_number(use, referrer):
                return None  # text with text orders fine
            return "ordering it against a number ('<', '>=') would fail at run time"
        if use.use == "sum" and kind == "array" and use.read.item is None:
            return None  # the list summed, or one in a list: not known which
        if use.use in NUMBER_TESTS:
            return f"'is {use.use}' would fail on it at run time"
        return f"'| {use.use}' would fail on it at run time"

    def _surely_number(self, use: NumericUse, referrer: str | None) -> bool:
        """Whether the other side of ``use`` is surely a number."""
        if use.number:
            return True
        if use.other is None:
            return False
        other = self._reads.read_schema(use.other, referrer, only_decimal=False)
        return other is not None and is_number(other)

    def whole_read_problem(
        self, ref: Reference, field: str, takes: Takes, referrer: str | None
    ) -> str | None:
        """A field given one bare read (``items: "{{ input.n }}"``) gets the read's value
        as it is: refused when the read's type is surely one the field's validator
        refuses (an integer for a list), which would fail the step at run time."""
        schema = self._reads.read_schema(Read(ref), referrer, only_decimal=False)
        kinds = json_kinds(schema)
        if schema is None or kinds is None or not kinds.isdisjoint(takes.kinds):
            return None
        shown = format_path((ref.root, *ref.path))
        read = "{{ " + shown + " }}"
        fix = field_fix(shown, kinds - {"null"}, takes)
        return (
            f"{read} is {describe(schema)}, but {field} takes {takes.words}, so the step "
            f"would fail at run time; {fix}"
        )

    def _mismatch_problem(self, use: NumericUse, referrer: str | None) -> str | None:
        """A read whose type is surely text, a list or an object, used with a value it can
        never be used with: ``==`` or ``!=`` a number (always false, or always true), ``*``
        text or a list (``'a' * 'b'`` fails), ``+`` text to a list or a list to text. A
        read of unknown type passes, as does one that may not be the value used, a
        union, and a Decimal (the Decimal rule, _numeric_problem, speaks of it)."""
        if not use.read.sure:
            return None
        if use.use in ("==", "!="):
            return self._equality_problem(use, referrer)
        if use.use == "arithmetic" and use.operator in ("*", "+") and use.other is not None:
            return self._joined_problem(use, referrer)
        return None

    def _equality_problem(self, use: NumericUse, referrer: str | None) -> str | None:
        if use.number:
            against = "a number"
        elif use.other is not None and use.other.sure and self._is_number(use.other, referrer):
            against = f"{shown_read(use.other)}, a number"
        else:
            return None
        if self._numeric_problem(use, referrer) is not None:
            return None  # a Decimal: said by the numeric rule
        schema, kind = self._sole_kind(use.read, referrer)
        if schema is None or kind not in _NOT_NUMBERS:
            return None
        if kind == "string":
            wrong = (
                f"'{use.use}' compares text with {against}, and text never equals a number "
                "('5' == 5 is false)"
            )
        else:
            wrong = f"'{use.use}' compares {_A_KIND[kind]} with {against}, which it never equals"
        message = type_use_message(use.read, describe(schema), kind, wrong)
        if kind == "string" and use.read.item is None:
            message += ", or compare it with text ('5')"
        return message

    def _joined_problem(self, use: NumericUse, referrer: str | None) -> str | None:
        """``a * b`` of text or lists, ``a + b`` of text and a list: each fails."""
        assert use.other is not None
        schema, kind = self._sole_kind(use.read, referrer)
        other, other_kind = self._sole_kind(use.other, referrer)
        if schema is None or other is None or is_decimal_text(schema) or is_decimal_text(other):
            return None  # a Decimal: said by the numeric rule
        if kind not in ("string", "array") or other_kind not in ("string", "array"):
            return None  # an object: said by _type_problem; a number, unknown: fine
        op = use.operator
        if op == "+" and kind == other_kind:
            return None  # joins text, or lists
        second = _OTHER_SAMPLE if kind == other_kind else _SAMPLE
        example = f"{_SAMPLE[kind]} {op} {second[other_kind]}"
        wrong = (
            f"'{op}' with {shown_read(use.other)}, {describe(other)}, would fail at run time "
            f"({example} is an error)"
        )
        return type_use_message(use.read, describe(schema), kind, wrong)

    def _sole_kind(self, read: Read, referrer: str | None) -> tuple[Schema | None, str | None]:
        """The type of ``read`` and its one kind of value (null aside), if it has one."""
        schema = self._reads.read_schema(read, referrer, only_decimal=False)
        present = (json_kinds(schema) or frozenset()) - {"null"}
        return schema, next(iter(present)) if len(present) == 1 else None

    def _is_number(self, read: Read, referrer: str | None) -> bool:
        schema = self._reads.read_schema(read, referrer, only_decimal=False)
        return schema is not None and is_number(schema)

    def increment_problem(self, value: Any, template: Template | None, referrer: str) -> str | None:
        """``sys.set_variable``'s ``increment`` adds its ``value`` (or 1 without one) to a
        number, and fails the step on anything else: a value that is surely not a number
        is refused. That is a literal that is not one, a template with text around it
        (it renders text), or one bare read of another type, such as a Decimal, which
        is stored as text to keep its digits. Other templates may give a number."""
        if template is None:
            return None  # a literal: SetVariableInput refuses one that is not a number
        if not template.native:
            return (
                f"{template.source!r} renders text, but {_ADDS}; write the whole value in "
                "one {{ … }}"
            )
        if not isinstance(template, BareTemplate):
            return None
        ref = template.references[0]
        schema = self._reads.read_schema(Read(ref), referrer, only_decimal=False)
        kinds = json_kinds(schema)
        if schema is None or kinds is None:
            return None
        present = kinds - {"null"}  # null adds 1; a value that may be null is still used
        if not present or "number" in present:
            return None
        shown = format_path((ref.root, *ref.path))
        read = "{{ " + shown + " }}"
        if is_decimal_text(schema):
            return (
                f"{read} is a Decimal, stored as text to keep its digits, but {_ADDS}; "
                f"convert it, as {{{{ {shown} | float }}}}"
            )
        if present == {"string"}:
            fix = f"convert it, as {{{{ {shown} | int }}}} or {{{{ {shown} | float }}}}"
        elif present == {"boolean"}:
            fix = f"for 1 or 0, write {{{{ {shown} | int }}}}"
        elif present <= {"array", "object"}:
            fix = f"for its count, write {{{{ {shown} | length }}}}, or read a number inside it"
        else:
            fix = "read a number here"
        return f"{read} is {describe(schema)}, but {_ADDS}; {fix}"


_NOT_NUMBERS = frozenset(("string", "array", "object"))
_SAMPLE = {"string": "'a'", "array": "[1]"}
_OTHER_SAMPLE = {"string": "'b'", "array": "[2]"}
_A_KIND = {
    "string": "text",
    "boolean": "a boolean",
    "array": "a list",
    "object": "an object",
    "null": "null",
    "number": "a number",
}
