"""A definition whose fields pydantic refused is still checked whole (definition.salvage):
its triggers too, so every problem shows at once."""

from __future__ import annotations

import textwrap

import pytest

from flowledger import DefinitionError, StepRegistry
from flowledger.definition.compiler import load_workflow_text
from flowledger.templates import TemplateEngine


def problems(text: str) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        load_workflow_text(
            textwrap.dedent(text), StepRegistry.with_builtins(), TemplateEngine(), "wf.yaml"
        )
    return [p.format() for p in info.value.problems]


def test_a_steps_unknown_field_does_not_hide_a_cron_error() -> None:
    """A step's misspelt ``inptu`` made the document fail its field checks, and the
    salvaged spec left every trigger out: the bad cron was said only on the next try."""
    found = problems(
        """
        name: both
        triggers:
          - {type: schedule, cron: "61 * * *"}
          - {type: webhook, path: in, secret_env: 5}
        steps:
          - {id: a, type: sys.transform, inptu: {value: 1}}
          - {id: b, type: sys.transform, input: {value: "{{ steps.zz.output }}"}}
        """
    )
    assert any(
        p.startswith("wf.yaml:4:28: triggers[0].cron: '61 * * *' is not a valid cron")
        for p in found
    ), found
    assert any("triggers[1].secret_env" in p for p in found), found
    assert any("unknown field 'inptu'; did you mean 'input'?" in p for p in found), found
    assert any("steps.zz names no step of this workflow" in p for p in found), found
