"""Triggers checked against the rest of the definition: a schedule's literal input against
``input_schema``."""

from __future__ import annotations

import pytest

from flowledger.definition.strictness import stored_definitions
from flowledger.definition.triggers import ScheduleTrigger
from tests.definition.test_compiler import compile_yaml, problems

SCHEMA = """\
name: report
input_schema:
  type: object
  properties: {team: {type: string}, size: {type: integer, default: 5}}
  required: [team]
"""
STEPS = """\
steps:
  - {id: a, type: sys.transform, input: {value: "{{ input.team }}"}}
"""


# -- a schedule's input ---------------------------------------------------------------------


def test_a_schedule_input_that_breaks_input_schema_is_refused_where_it_is_written() -> None:
    text = (
        SCHEMA
        + "triggers:\n"
        + '  - {type: schedule, cron: "0 9 * * *", input: {teem: sales}}\n'
        + '  - {type: schedule, cron: "0 23 * * *"}\n'
        + '  - {type: schedule, cron: "0 12 * * *", input: {team: sales, size: many}}\n'
        + STEPS
    )
    found = problems(text)
    assert found == [
        "wf.yaml:7:48: triggers[0].input: 'team' is a required property; every tick starts "
        "the workflow with this input, so it must match input_schema",
        "wf.yaml:8:5: triggers[1].input: 'team' is a required property; every tick starts "
        "the workflow with this input, so it must match input_schema",
        "wf.yaml:9:69: triggers[2].input.size: 'many' is not of type 'integer'; every tick "
        "starts the workflow with this input, so it must match input_schema",
    ]
    with stored_definitions():  # a new rule: its ticks are Failed executions that say why
        compile_yaml(text)  # (tests/worker/test_schedules.py)


@pytest.mark.parametrize(
    "schedule",
    [
        '{type: schedule, cron: "0 9 * * *", input: {team: sales}}',
        '{type: schedule, cron: "0 9 * * *", input: {team: sales, size: 3}}',
    ],
)
def test_a_schedule_input_that_fits_compiles(schedule: str) -> None:
    workflow = compile_yaml(SCHEMA + f"triggers:\n  - {schedule}\n" + STEPS)
    assert isinstance(workflow.triggers[0].spec, ScheduleTrigger)


def test_a_schedule_input_with_many_problems_names_ten_and_counts_the_rest() -> None:
    names = [f"f{i:02}" for i in range(12)]
    text = (
        f"name: wide\ninput_schema: {{type: object, required: [{', '.join(names)}]}}\n"
        'triggers:\n  - {type: schedule, cron: "0 9 * * *", input: {}}\n'
        "steps:\n  - {id: a, type: sys.transform, input: {value: 1}}\n"
    )
    found = problems(text)
    assert len(found) == 11
    assert all("'f" in problem for problem in found[:10])
    assert found[10].endswith("triggers[0].input: and 2 more problems of the schedule's input")


def test_a_schedule_without_input_schema_takes_any_input() -> None:
    text = 'name: free\ntriggers:\n  - {type: schedule, cron: "0 9 * * *", input: {x: 1}}\n'
    compile_yaml(text + STEPS.replace("input.team", "input.x"))


def test_an_invalid_input_schema_is_reported_once_at_the_schema() -> None:
    text = (
        "name: broken\ninput_schema: {type: objekt}\n"
        'triggers:\n  - {type: schedule, cron: "0 9 * * *", input: {team: 1}}\n'
        "steps:\n  - {id: a, type: sys.transform, input: {value: 1}}\n"
    )
    [problem] = problems(text)
    assert "input_schema.type" in problem and "triggers" not in problem
