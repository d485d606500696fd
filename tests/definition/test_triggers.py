"""Triggers checked against the rest of the definition: a schedule's literal input against
``input_schema``, an entity trigger's ``when`` against the events it sees."""

from __future__ import annotations

import pytest

from flowledger.definition.strictness import stored_definitions
from flowledger.definition.triggers import EntityTrigger, ScheduleTrigger
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


# -- an entity trigger's when and previousEntity -------------------------------------------

ENTITY = """\
name: status_change
triggers:
  - type: entity
    entity_type: Order
    events: EVENTS
    when: "WHEN"
steps:
  - {id: a, type: sys.no_action}
"""


def entity(when: str, events: str = "[created, updated]") -> str:
    return ENTITY.replace("EVENTS", events).replace("WHEN", when)


def test_an_unguarded_read_of_previous_entity_on_created_events_is_refused() -> None:
    when = "{{ trigger.previousEntity.payload.Status != trigger.entity.payload.Status }}"
    [problem] = problems(entity(when))
    assert problem.startswith(
        "wf.yaml:6:11: triggers[0].when: reads trigger.previousEntity.payload.Status, which "
        "fails on created events: previousEntity is null on them (it is the entity before an "
        "update), so the when fails and the workflow does not run; guard the read, as in "
        "{{ trigger.eventType == 'updated' and … }} or {{ trigger.previousEntity and … }}, "
        "give it a default (trigger.previousEntity.payload.Status | default(none)), or leave "
        "created out of events"
    )
    with stored_definitions():  # a new rule: a stored trigger's created events fail
        compile_yaml(entity(when))  # (tests/worker/test_entity_triggers.py)


@pytest.mark.parametrize(
    ("events", "named"),
    [
        ("[deleted, updated]", "fails on deleted events"),
        ("[created, updated, deleted]", "fails on created and deleted events"),
        # No events: all three.
        ("[created, deleted, updated]", "fails on created and deleted events"),
    ],
)
def test_deleted_events_have_no_previous_entity_either(events: str, named: str) -> None:
    [problem] = problems(entity("{{ trigger.previousEntity.payload.Status == 'New' }}", events))
    assert named in problem


def test_an_entity_trigger_without_events_sees_created_ones() -> None:
    text = entity("{{ trigger.previousEntity.payload.Status == 'New' }}")
    [problem] = problems(text.replace("    events: [created, updated]\n", ""))
    assert "fails on created and deleted events" in problem


@pytest.mark.parametrize(
    "when",
    [
        "{{ trigger.previousEntity and trigger.previousEntity.payload.Status != 'New' }}",
        "{{ trigger.eventType == 'updated' and trigger.previousEntity.payload.Status != 'N' }}",
        "{{ 'updated' == trigger.eventType and trigger.previousEntity.payload.Status != 'N' }}",
        "{{ trigger.eventType in ['updated'] and trigger.previousEntity.payload.Status }}",
        "{{ trigger.eventType != 'created' and trigger.previousEntity.payload.Status }}",
        "{{ trigger.eventType == 'created' or trigger.previousEntity.payload.Status != 'N' }}",
        "{{ not trigger.previousEntity or trigger.previousEntity.payload.Status != 'N' }}",
        "{{ trigger.previousEntity is not none and trigger.previousEntity.payload.Status }}",
        "{{ trigger.previousEntity != none and trigger.previousEntity.payload.Status }}",
        "{{ trigger.previousEntity.payload.Status | default(none) != 'New' }}",
        "{{ trigger.previousEntity.payload.Status is defined }}",
        "{{ trigger.previousEntity.payload.Status if trigger.previousEntity else true }}",
        "{{ trigger.previousEntity is none or trigger['previousEntity']['payload'].Status }}",
        "{{ trigger.previousEntity == none }}",  # previousEntity itself is null, not missing
    ],
)
def test_a_guarded_read_compiles(when: str) -> None:
    workflow = compile_yaml(entity(when))
    assert isinstance(workflow.triggers[0].spec, EntityTrigger)


@pytest.mark.parametrize(
    "when",
    [
        "{{ true if trigger.previousEntity else trigger.previousEntity.payload.Status }}",
        "{{ trigger.eventType == 'deleted' or trigger.previousEntity.payload.Status }}",
        "{{ trigger.entity.payload.Status == 'N' and trigger.previousEntity.payload.Status }}",
        "{{ (trigger.previousEntity.payload.Status ~ '') | default('') == '' }}",
        "{{ trigger.previousEntity.get('payload') }}",
    ],
)
def test_a_guard_that_does_not_hold_on_created_events_is_refused(when: str) -> None:
    [problem] = problems(entity(when))
    assert "previousEntity is null on them" in problem


def test_only_updates_read_previous_entity_freely() -> None:
    compile_yaml(entity("{{ trigger.previousEntity.payload.Status == 'New' }}", "[updated]"))
