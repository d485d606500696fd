"""Rules on reads whose type the definition knows, beside those of ReferenceChecker.

:class:`TypedReads` is the checker the compiler uses: ReferenceChecker's names, order and
numeric uses, and these rules, which ask it the type of a read (from ``input_schema``,
an output model or ``output_schema``, a loop's items). Like its numeric rules, they hold
for new definitions only (definition.strictness): a stored version compiles as before.
"""

from __future__ import annotations

from typing import Any

from flowledger.definition.references import ReferenceChecker
from flowledger.definition.schemas import describe, is_decimal_text, json_kinds, kind_of_value
from flowledger.errors import format_path
from flowledger.errors import shown as spelt
from flowledger.templates import Template
from flowledger.templates.compiler import BareTemplate
from flowledger.templates.numeric_uses import Read

#: What sys.set_variable's ``increment`` adds, said where its value is not that.
_ADDS = "op increment adds numbers only, so the step would fail at run time"


class TypedReads(ReferenceChecker):
    def increment_problem(self, value: Any, template: Template | None, referrer: str) -> str | None:
        """``sys.set_variable``'s ``increment`` adds its ``value`` (or 1 without one) to a
        number, and fails the step on anything else: a value that is surely not a number
        is refused. That is a literal that is not one, a template with text around it
        (it renders text), or one bare read of another type, such as a Decimal, which
        is stored as text to keep its digits. Other templates may give a number."""
        if template is None:
            if value is None or kind_of_value(value) == "number":
                return None
            return f"{spelt(value)} is {_A_KIND[kind_of_value(value)]}, but {_ADDS}; write a number"
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


_A_KIND = {
    "string": "text",
    "boolean": "a boolean",
    "array": "a list",
    "object": "an object",
    "null": "null",
    "number": "a number",
}
