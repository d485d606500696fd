"""Static references: what a template reads, for validation before a run."""

from __future__ import annotations

import pytest

from flowledger.templates import Reference
from tests.templates.support import ENGINE


def refs(source: str) -> tuple[Reference, ...]:
    return ENGINE.compile(source).references


def test_dotted_paths_and_boolean_operators() -> None:
    assert refs("{{ steps.q.output.totalCount > 0 and loop.items.index }}") == (
        Reference("steps", ("q", "output", "totalCount"), True),
        Reference("loop", ("items", "index"), True),
    )


def test_subscripts_with_constants_equal_the_dot_form() -> None:
    assert refs("{{ steps['q']['output'] }}") == (Reference("steps", ("q", "output"), True),)
    assert refs("{{ steps.q.output.entities[0].id }}") == (
        Reference("steps", ("q", "output", "entities", 0, "id"), True),
    )
    assert refs("{{ xs[-1] }}") == (Reference("xs", (-1,), True),)


def test_dynamic_segment_stops_the_path_and_is_read_itself() -> None:
    assert refs("{{ steps[x].output }}") == (
        Reference("steps", (), False),
        Reference("x", (), True),
    )
    assert refs("{{ steps.a.output[loop.l.index].name }}") == (
        Reference("steps", ("a", "output"), False),
        Reference("loop", ("l", "index"), True),
    )


def test_globals_are_not_references() -> None:
    assert refs("{{ range(variables.n) }}") == (Reference("variables", ("n",), True),)


def test_filter_and_call_arguments_are_expressions_too() -> None:
    assert refs("{{ steps.a.output|default(variables.fallback)|join(context.sep) }}") == (
        Reference("steps", ("a", "output"), True),
        Reference("variables", ("fallback",), True),
        Reference("context", ("sep",), True),
    )
    assert refs("{{ variables.get(input.key) }}") == (
        Reference("variables", (), True),
        Reference("input", ("key",), True),
    )


def test_method_calls_are_not_part_of_the_path() -> None:
    assert refs("{{ steps.a.output.name.lower() }}") == (
        Reference("steps", ("a", "output", "name"), True),
    )
    assert refs("{{ steps.a.output.items }}") == (
        Reference("steps", ("a", "output", "items"), True),
    )


def test_reads_inside_other_expressions() -> None:
    assert refs("{{ (steps.a.output|first).id }}") == (Reference("steps", ("a", "output"), True),)
    # the condition of "a if b else c" is read first; repeats are listed once
    assert refs("a {{ trigger.body if execution.id else secrets.KEY }} b {{ trigger.body }}") == (
        Reference("execution", ("id",), True),
        Reference("trigger", ("body",), True),
        Reference("secrets", ("KEY",), True),
    )
    assert refs("{{ [__context__.x, {'k': __steps__.a.outputData}] }}") == (
        Reference("__context__", ("x",), True),
        Reference("__steps__", ("a", "outputData"), True),
    )


@pytest.mark.parametrize("source", ["{{ 1 + 2 }}", "{{ 'text' }}", "{{ range(3)|list }}"])
def test_constant_expressions_read_nothing(source: str) -> None:
    assert refs(source) == ()
