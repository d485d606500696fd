"""``validate`` reports every problem at once, also past a trigger of an unknown type and
a duplicate step id, which each hid others (tour 25 L2)."""

from __future__ import annotations

import textwrap

import pytest

from flowledger.definition.compiler import load_workflow_text
from flowledger.errors import DefinitionError
from flowledger.steps.registry import StepRegistry
from flowledger.templates import TemplateEngine


def problems(text: str) -> list[str]:
    with pytest.raises(DefinitionError) as refused:
        load_workflow_text(
            textwrap.dedent(text).lstrip(),
            StepRegistry.with_builtins(),
            TemplateEngine(),
            "wf.yaml",
        )
    return [problem.format() for problem in refused.value.problems]


def test_an_unknown_trigger_type_hides_no_other_trigger_problem() -> None:
    found = problems(
        """
        name: t
        triggers:
          - {type: schedule, cron: "61 * * * *"}
          - {type: webhook, path: x}
          - {type: shedule, cron: "* * * * *"}
          - {type: entity, entity_type: Lead, evnts: [created]}
        steps:
          - {id: a, type: sys.transform, input: {value: 1}}
        """
    )
    assert [problem.split(": ")[0:2] for problem in found] == [
        ["wf.yaml:3:28", "triggers[0].cron"],
        ["wf.yaml:4:5", "triggers[1]"],
        ["wf.yaml:5:12", "triggers[2].type"],
        ["wf.yaml:6:46", "triggers[3]"],
    ]
    assert "'61 * * * *' is not a valid cron expression" in found[0]
    assert "has no secret_env" in found[1]
    assert 'not "shedule"' in found[2]
    assert "unknown field 'evnts'" in found[3]


def test_the_problems_inside_a_step_with_a_duplicate_id_are_reported() -> None:
    found = problems(
        """
        name: d
        steps:
          - {id: a, type: sys.transform, input: {value: 1}}
          - id: a
            type: sys.transform
            input: {vale: 1, value: "{{ steps.zzz.output }}"}
        """
    )
    assert found[0].startswith("wf.yaml:4:9: step 'a': id: duplicate step id 'a'")
    rest = found[1:]
    assert len(rest) == 2, found
    assert "unknown input field 'vale' for sys.transform" in rest[0]
    assert (
        rest[1] == "wf.yaml:6:29: step 'a': input.value: steps.zzz names no step of this workflow"
    )
