"""An unknown field of a step, of its ``retry`` or of the workflow is said as an unknown
input field is (errors.unknown_field): a did-you-mean when one is close, and the fields
there are, in the FILE:LINE:COL: step 'id': message form."""

from __future__ import annotations

import textwrap

import pytest
from pydantic import BaseModel

from flowledger import DefinitionError, StepRegistry
from flowledger.definition.compiler import load_workflow_text
from flowledger.definition.models import RetryPolicy, StepSpec, WorkflowSpec
from flowledger.templates import TemplateEngine


def problems(text: str) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        load_workflow_text(
            textwrap.dedent(text), StepRegistry.with_builtins(), TemplateEngine(), "wf.yaml"
        )
    return [p.format() for p in info.value.problems]


def _fields(model: type[BaseModel]) -> str:
    return ", ".join(f.alias or name for name, f in model.model_fields.items())


def test_a_misspelt_step_field_is_named_with_the_closest_and_all_there_are() -> None:
    assert problems(
        """
        name: typo
        steps:
          - id: call
            type: sys.transform
            input: {value: 1}
            retyr: {max_attempts: 2}
            continue_on_eror: true
        """
    ) == [
        "wf.yaml:7:5: step 'call': unknown field 'retyr'; did you mean 'retry'? "
        f"(its fields: {_fields(StepSpec)})",
        "wf.yaml:8:5: step 'call': unknown field 'continue_on_eror'; did you mean "
        f"'continue_on_error'? (its fields: {_fields(StepSpec)})",
    ]


def test_a_step_field_like_none_still_lists_them() -> None:
    [problem] = problems(
        """
        name: typo
        steps:
          - {id: call, type: sys.transform, input: {value: 1}, zzz: 1}
        """
    )
    assert problem == (
        f"wf.yaml:4:56: step 'call': unknown field 'zzz' (its fields: {_fields(StepSpec)})"
    )


def test_a_misspelt_retry_field_lists_the_retry_fields() -> None:
    [problem] = problems(
        """
        name: typo
        steps:
          - {id: call, type: sys.transform, input: {value: 1}, retry: {max_attempt: 2}}
        """
    )
    assert problem == (
        "wf.yaml:4:64: step 'call': retry: unknown field 'max_attempt'; did you mean "
        f"'max_attempts'? (its fields: {_fields(RetryPolicy)})"
    )


def test_a_misspelt_workflow_field_lists_the_workflow_fields() -> None:
    [problem] = problems(
        """
        name: typo
        variabels: {}
        steps: [{id: call, type: sys.transform, input: {value: 1}}]
        """
    )
    assert problem == (
        "wf.yaml:3:1: unknown field 'variabels'; did you mean 'variables'? "
        f"(its fields: {_fields(WorkflowSpec)})"
    )
