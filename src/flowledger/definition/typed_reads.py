"""Rules on reads whose type the definition knows, beside those of ReferenceChecker.

:class:`TypedReads` is the checker the compiler uses: ReferenceChecker's names, order and
numeric uses, and these rules, which ask it the type of a read (from ``input_schema``,
an output model or ``output_schema``, a loop's items): text, a list or an object
compared with a number (``input.s == 5``, always false) or multiplied by text or a list
(``input.s * input.t`` fails), and sys.set_variable's ``increment`` by a value that is
surely not a number. Like its numeric rules, they hold for new definitions only
(definition.strictness): a stored version compiles as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowledger.definition.references import ReferenceChecker, _shown, _type_use_message
from flowledger.definition.schemas import (
    Schema,
    describe,
    is_decimal_text,
    is_number,
    json_kinds,
)
from flowledger.definition.strictness import checking_new
from flowledger.errors import format_path
from flowledger.templates import Template
from flowledger.templates.compiler import BareTemplate
from flowledger.templates.numeric_uses import NumericUse, Read

#: What sys.set_variable's ``increment`` adds, said where its value is not that.
_ADDS = "op increment adds numbers only, so the step would fail at run time"


class TypedReads(ReferenceChecker):
    def check(
        self, template: Template, referrer: str | None, report: Callable[[str], None]
    ) -> None:
        super().check(template, referrer, report)
        if not checking_new() or not template.numeric_uses:
            return
        said: set[str] = set()
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

    def _mismatch_problem(self, use: NumericUse, referrer: str | None) -> str | None:
        """A read whose type is surely text, a list or an object, used with a value it can
        never be used with: ``==`` or ``!=`` a number (always false, or always true), ``*``
        text or a list (``'a' * 'b'`` fails), ``+`` text to a list or a list to text. A
        read of unknown type passes, as does one that may not be the value used, a
        union, and a Decimal (ReferenceChecker's numeric rule speaks of it)."""
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
            against = f"{_shown(use.other)}, a number"
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
        message = _type_use_message(use.read, describe(schema), kind, wrong)
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
            return None  # an object: said by ReferenceChecker's; a number, unknown: fine
        op = use.operator
        if op == "+" and kind == other_kind:
            return None  # joins text, or lists
        second = _OTHER_SAMPLE if kind == other_kind else _SAMPLE
        example = f"{_SAMPLE[kind]} {op} {second[other_kind]}"
        wrong = (
            f"'{op}' with {_shown(use.other)}, {describe(other)}, would fail at run time "
            f"({example} is an error)"
        )
        return _type_use_message(use.read, describe(schema), kind, wrong)

    def _sole_kind(self, read: Read, referrer: str | None) -> tuple[Schema | None, str | None]:
        """The type of ``read`` and its one kind of value (null aside), if it has one."""
        schema = self._read_schema(read, referrer, only_decimal=False)
        present = (json_kinds(schema) or frozenset()) - {"null"}
        return schema, next(iter(present)) if len(present) == 1 else None

    def _is_number(self, read: Read, referrer: str | None) -> bool:
        schema = self._read_schema(read, referrer, only_decimal=False)
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
        schema = self._read_schema(Read(ref), referrer, only_decimal=False)
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
