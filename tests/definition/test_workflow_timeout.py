"""A workflow's ``timeout`` is a fixed Duration, read when the definition loads, as a
step's is."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import pytest

from flowledger import DefinitionError, StepRegistry
from flowledger.definition.compiled import CompiledWorkflow
from flowledger.definition.compiler import load_workflow_text
from flowledger.templates import TemplateEngine


def _load(timeout: str) -> CompiledWorkflow:
    text = f"""
        name: bounded
        timeout: {timeout}
        steps: [{{id: a, type: sys.transform, input: {{value: 1}}}}]
        """
    registry = StepRegistry.with_builtins()
    return load_workflow_text(textwrap.dedent(text), registry, TemplateEngine(), "wf.yaml")


@pytest.mark.parametrize(
    ("written", "seconds"), [("90s", 90), ("2h", 7200), ("PT5M", 300), ("45", 45)]
)
def test_it_takes_a_duration(written: str, seconds: int) -> None:
    assert _load(written).spec.timeout == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("0s", "wf.yaml:3:10: timeout: must be longer than 0 (leave it out for no timeout)"),
        (
            "'{{ input.t }}'",
            "wf.yaml:3:10: timeout: is read before the run and takes a fixed duration, "
            "not a template",
        ),
    ],
)
def test_a_timeout_that_cannot_bound_is_refused_where_it_is_written(
    written: str, said: str
) -> None:
    with pytest.raises(DefinitionError) as info:
        _load(written)
    assert [p.format() for p in info.value.problems] == [said]
