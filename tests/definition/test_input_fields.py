"""A step input's unknown field is said in one way, for built-in and custom types alike:
the type, a did-you-mean when one is close, and the fields there are
(definition.input_fields.unknown_fields)."""

from __future__ import annotations

import textwrap

import pytest
from pydantic import BaseModel

from flowledger import DefinitionError, StepContext, StepRegistry, step_type
from flowledger.definition.compiler import load_workflow_text
from flowledger.templates import TemplateEngine


class TransferInput(BaseModel):
    amount: int
    source: str
    target: str


@step_type("acme.transfer")
async def transfer(data: TransferInput, ctx: StepContext) -> dict[str, int]:
    return {"amount": data.amount}


def problems(text: str) -> list[str]:
    registry = StepRegistry.with_builtins()
    registry.register(transfer)
    with pytest.raises(DefinitionError) as info:
        load_workflow_text(textwrap.dedent(text), registry, TemplateEngine(), "wf.yaml")
    return [p.format() for p in info.value.problems]


HTTP_FIELDS = (
    "method, url, headers, query, json, body, timeout, ok_status, max_response_bytes, "
    "follow_redirects, save_as, artifact_name"
)


def test_a_built_in_types_unknown_field_lists_its_fields_as_a_custom_types_does() -> None:
    """``input: unknown field 'bogus'`` named no field of sys.http_request, where a
    custom type's message listed its own: pydantic said the one (an input without
    templates), input_fields the other."""
    found = problems(
        """
        name: fields
        steps:
          - {id: a, type: sys.http_request, input: {url: "https://example.com", bogus: 1}}
          - {id: b, type: sys.http_request, input: {url: "https://example.com", header: {}}}
          - {id: c, type: acme.transfer, input: {amount: 1, source: x, target: y, bogus: 1}}
          - {id: d, type: sys.transform, input: {valeu: 1}}
        """
    )
    assert found == [
        "wf.yaml:4:73: step 'a': input: unknown input field 'bogus' for sys.http_request "
        f"({'its fields: ' + HTTP_FIELDS})",
        "wf.yaml:5:73: step 'b': input: unknown input field 'header' for sys.http_request; "
        f"did you mean 'headers'? ({'its fields: ' + HTTP_FIELDS})",
        "wf.yaml:6:75: step 'c': input: unknown input field 'bogus' for acme.transfer "
        "(its fields: amount, source, target)",
        "wf.yaml:7:41: step 'd': input.value is required",
        "wf.yaml:7:42: step 'd': input: unknown input field 'valeu' for sys.transform; "
        "did you mean 'value'? (its fields: value)",
    ]


@pytest.mark.parametrize("prompt", ["hi", "'{{ input.p }}'"])
def test_a_nested_models_unknown_field_is_said_once_with_its_fields(prompt: str) -> None:
    """``on_timeout: {defaul: 1}`` read ``input.on_timeout: on_timeout: unknown field
    'defaul'`` (the path twice, no field named) without a template in the input."""
    found = problems(
        f"""
        name: nested
        steps:
          - {{id: a, type: sys.wait_for_input, input: {{prompt: {prompt}, on_timeout: {{defaul: 1}}}}}}
        """
    )
    assert len(found) == 1, found
    assert found[0].endswith(
        "step 'a': input.on_timeout: unknown field 'defaul' for sys.wait_for_input; "
        "did you mean 'default'? (its fields: default)"
    ), found
