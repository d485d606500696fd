"""``on_failure: {workflow: NAME}`` is checked when the definition loads: a workflow
name, not this workflow itself."""

from __future__ import annotations

import textwrap

import pytest

from flowledger import DefinitionError, StepRegistry
from flowledger.definition.compiler import load_workflow_text
from flowledger.templates import TemplateEngine


def _problems(on_failure: str) -> list[str]:
    text = f"""
        name: orders
        on_failure: {on_failure}
        steps: [{{id: a, type: sys.fail}}]
        """
    registry = StepRegistry.with_builtins()
    try:
        load_workflow_text(textwrap.dedent(text), registry, TemplateEngine(), "wf.yaml")
    except DefinitionError as exc:
        return [p.format() for p in exc.problems]
    return []


def test_a_workflow_name_loads() -> None:
    assert _problems("{workflow: alert-ops}") == []


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("{workflow: orders}", "on_failure: names this workflow itself: name another workflow"),
        (
            "{workflow: 'two words'}",
            "on_failure.workflow: use letters, digits, '_', '.' and '-', starting with a letter or a digit (not 'two words')",
        ),
        ("{workflow: alert, version: 2}", "on_failure: unknown field 'version'"),
    ],
)
def test_what_cannot_be_a_handler_is_refused(written: str, said: str) -> None:
    [problem] = _problems(written)
    assert problem.startswith("wf.yaml:3:"), problem
    assert said in problem, problem
