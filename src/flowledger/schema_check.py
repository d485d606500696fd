"""A value checked against a JSON Schema, each problem with the path of its field.

One wording for the three values people send that a schema governs: a workflow's input
(``input_schema``), the data a waiting step asks for, and an entity's payload. The
error carries every problem as ``(field path, message)``, so the HTTP API answers with
``details.problems`` a client can point at a field with, and its message says them all
in one line the CLI prints as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowledger.errors import InvalidInputError, format_path
from flowledger.types import FieldPath

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

#: The problems one error names at most (a list of 10,000 bad items is not 10,000 lines).
MAX_PROBLEMS = 20


def schema_problems(
    validator: Validator, value: Any, root: str, limit: int = MAX_PROBLEMS
) -> tuple[list[tuple[FieldPath, str]], int]:
    """The first ``limit`` problems of ``value`` in field order, each path starting at
    ``root`` (``input``, ``data``, ``payload``), and how many there are in all."""
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    shown = [((root, *error.absolute_path), error.message) for error in errors[:limit]]
    return shown, len(errors)


def check_against_schema(
    validator: Validator, value: Any, root: str, what: str, limit: int = MAX_PROBLEMS
) -> None:
    """InvalidInputError ``"{what}: {root}.field: problem; …"`` when ``value`` breaks the
    schema; its ``problems`` hold each one's path."""
    problems, total = schema_problems(validator, value, root, limit)
    if not problems:
        return
    lines = [f"{format_path(path)}: {message}" for path, message in problems]
    if total > len(problems):
        lines.append(f"and {total - len(problems)} more")
    raise InvalidInputError(f"{what}: " + "; ".join(lines), problems=problems)


def problem_lines(validator: Validator, value: Any, root: str) -> list[str]:
    """Each problem as ``root.field: message`` (what an event records)."""
    problems, _ = schema_problems(validator, value, root)
    return [f"{format_path(path)}: {message}" for path, message in problems]


def validator_for(schema: Any, *, formats: bool = False) -> Validator:
    """A Draft 2020-12 validator of ``schema`` (jsonschema is imported on first use, so
    only what checks a schema pays for it); ``formats`` also checks ``format``."""
    from jsonschema import Draft202012Validator

    checker = Draft202012Validator.FORMAT_CHECKER if formats else None
    return Draft202012Validator(schema, format_checker=checker)
