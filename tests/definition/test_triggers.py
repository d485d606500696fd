"""Triggers checked against the rest of the definition: a schedule's literal input against
``input_schema``, an entity trigger's ``when`` against the events it sees."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest

from flowledger.definition.strictness import stored_definitions
from flowledger.definition.triggers import EntityTrigger, ScheduleTrigger, by_hand_trigger
from flowledger.errors import TemplateError
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


# -- previousEntity read in a step ----------------------------------------------------------

STEPS_READING = """\
name: status_steps
triggers:
  - type: entity
    entity_type: Order
    events: EVENTS
steps:
STEPS
"""
PREVIOUS = "{{ trigger.previousEntity.payload.Status }}"


def reading(steps: str, events: str = "[created, updated]") -> str:
    return STEPS_READING.replace("EVENTS", events).replace("STEPS", textwrap.indent(steps, "  "))


def test_an_unguarded_read_of_previous_entity_in_a_step_is_refused() -> None:
    """A step's input read ``trigger.previousEntity.<field>`` unguarded: validate passed,
    and on a created event the step failed (previousEntity is null)."""
    text = reading(f'- {{id: a, type: sys.transform, input: {{value: "{PREVIOUS}"}}}}\n')
    [problem] = problems(text)
    assert problem == (
        "wf.yaml:7:49: step 'a': input.value: reads trigger.previousEntity.payload.Status, "
        "which fails on created events: previousEntity is null on them (it is the entity "
        "before an update), so the step would fail; guard the read, as in "
        "{{ trigger.eventType == 'updated' and … }} or {{ trigger.previousEntity and … }}, "
        "give it a default (trigger.previousEntity.payload.Status | default(none)), run the "
        "step on updates only (when: \"{{ trigger.eventType == 'updated' }}\"), or leave "
        "created out of the trigger's events"
    )
    with stored_definitions():  # a new rule: a stored version compiles, and fails so
        workflow = compile_yaml(text)
    created = {"type": "entity", "eventType": "created", "entity": {}, "previousEntity": None}
    with pytest.raises(TemplateError, match=r"trigger\.previousEntity is null"):
        workflow.steps["a"].input.render({"trigger": created})


CONDITION = "{{ trigger.eventType == 'updated' }}"


@pytest.mark.parametrize(
    ("steps", "events", "where"),
    [
        (
            f"- {{id: a, type: sys.no_action, when: \"{PREVIOUS[:-3]} == 'x' }}}}\"}}\n",
            None,
            "when",
        ),
        (
            f'- {{id: a, type: sys.fail, input: {{message: "was {PREVIOUS}"}}}}\n',
            "[deleted]",
            "input",
        ),
        (
            "- id: each\n  type: sys.loop\n  input: {items: [1, 2]}\n  steps:\n"
            f'    - {{id: a, type: sys.transform, input: {{value: "{PREVIOUS}"}}}}\n',
            None,
            "input",
        ),
        (
            f'- {{id: c, type: sys.condition, input: {{expression: "{CONDITION}"}}, else: [a]}}\n'
            f'- {{id: a, type: sys.transform, input: {{value: "{PREVIOUS}"}}}}\n',
            None,
            "input",
        ),
        (
            f'- {{id: g, type: sys.no_action, when: "{CONDITION}"}}\n'
            "- {id: h, type: sys.no_action, after: []}\n"
            f'- {{id: a, type: sys.transform, after: [g, h], input: {{value: "{PREVIOUS}"}}}}\n',
            None,
            "input",
        ),
    ],
)
def test_a_step_that_may_run_on_created_or_deleted_events_is_refused(
    steps: str, events: str | None, where: str
) -> None:
    [problem] = problems(reading(steps, events or "[created, updated]"))
    assert f"step 'a': {where}" in problem and "previousEntity is null on them" in problem


@pytest.mark.parametrize(
    ("steps", "events", "when"),
    [
        (f'- {{id: a, type: sys.transform, input: {{value: "{PREVIOUS}"}}}}\n', "[updated]", None),
        # The trigger starts the workflow on updates only.
        (f'- {{id: a, type: sys.transform, input: {{value: "{PREVIOUS}"}}}}\n', None, CONDITION),
        # Guarded where it is read.
        (
            "- {id: a, type: sys.transform, input: {value: "
            '"{{ trigger.previousEntity.payload.Status if trigger.previousEntity else none }}"}}\n',
            None,
            None,
        ),
        (
            "- {id: a, type: sys.transform, input: {value: "
            '"{{ trigger.previousEntity.payload.Status | default(none) }}"}}\n',
            None,
            None,
        ),
        # By the step's when, its branch, or the steps it runs after.
        (
            f'- {{id: a, type: sys.transform, when: "{CONDITION}", input: {{value: "{PREVIOUS}"}}}}\n',
            None,
            None,
        ),
        (
            f'- {{id: c, type: sys.condition, input: {{expression: "{CONDITION}"}}, then: [a]}}\n'
            f'- {{id: a, type: sys.transform, input: {{value: "{PREVIOUS}"}}}}\n'
            f'- {{id: b, type: sys.transform, input: {{value: "{PREVIOUS}"}}}}\n'
            "- id: each\n  type: sys.loop\n  input: {items: [1]}\n  steps:\n"
            f'    - {{id: d, type: sys.transform, input: {{value: "{PREVIOUS}"}}}}\n',
            None,
            None,
        ),
        (
            "- {id: c, type: sys.condition, input: {expression: "
            "\"{{ trigger.eventType == 'created' }}\"}, then: [n], else: [a]}\n"
            "- {id: n, type: sys.no_action}\n"
            f'- {{id: a, type: sys.transform, input: {{value: "{PREVIOUS}"}}}}\n',
            None,
            None,
        ),
    ],
)
def test_a_step_guarded_or_run_on_updates_only_compiles(
    steps: str, events: str | None, when: str | None
) -> None:
    text = reading(steps, events or "[created, updated]")
    if when is not None:
        text = text.replace("    events:", f'    when: "{when}"\n    events:')
    compile_yaml(text)


def test_a_workflow_without_entity_triggers_is_not_asked() -> None:
    compile_yaml(
        f'name: plain\nsteps:\n  - {{id: a, type: sys.transform, input: {{value: "{PREVIOUS}"}}}}\n'
    )


# -- a schedule's identity across versions ----------------------------------------------------


def schedule_ids(*triggers: str) -> list[str | None]:
    listed = "".join(f"\n  - {t}" for t in triggers)
    workflow = compile_yaml(f"name: ids\ntriggers:{listed}\n{STEPS}")
    return [t.schedule_id for t in workflow.triggers]


A = '{type: schedule, cron: "*/5 * * * *", input: {who: a}}'
B = '{type: schedule, cron: "0 9 * * *", timezone: Europe/Berlin}'


def test_a_schedule_is_known_by_its_content_not_its_place() -> None:
    """Its progress and its ticks' keys follow it whatever moves around it
    (tests/worker/test_schedules.py: a push that moves triggers)."""
    [a, b] = schedule_ids(A, B)
    assert a is not None and b is not None and a != b
    assert schedule_ids(B, A) == [b, a]
    assert schedule_ids("{type: function}", A, "{type: webhook, path: x, auth: none}", B) == [
        None,
        a,
        None,
        b,
    ]
    # its policies are not what it is: an edit of them keeps its progress
    policies = A.replace("input:", "catch_up: all, overlap: skip, input:")
    assert schedule_ids(policies) == [a]
    assert schedule_ids(A.replace("*/5 * * * *", " */5  * * * * ")) == [a]  # spaces aside


@pytest.mark.parametrize(
    "edited",
    [
        A.replace("*/5", "*/10"),
        A.replace("input:", "timezone: Europe/Berlin, input:"),
        A.replace("who: a", "who: b"),
        A.replace(", input: {who: a}", ""),
    ],
)
def test_a_schedule_with_another_cron_zone_or_input_is_another(edited: str) -> None:
    assert schedule_ids(edited) != schedule_ids(A)


def test_schedules_alike_are_told_apart_by_their_order() -> None:
    """Two schedules alike both fire every tick: each keeps its own progress, the second
    (and third) by a suffix; no id holds ':', which ends a schedule's trigger key prefix,
    so one schedule's prefix never matches another's keys."""
    [a] = schedule_ids(A)
    ids = schedule_ids(A, B, A, A)
    assert ids[0] == a and ids[2:] == [f"{a}-2", f"{a}-3"]
    assert not any(":" in str(i) for i in ids)


def test_a_start_by_hand_takes_the_schedule_fields_of_the_one_schedule_only() -> None:
    """With several schedules the first one's cron and zone were given, as if a start by
    hand were a tick of it: now only ``scheduledAt``, which every schedule gives."""
    now = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
    one = compile_yaml(
        """
        name: one
        triggers:
          - {type: schedule, cron: "0 9 * * *", timezone: Europe/Berlin}
          - {type: webhook, path: one, auth: none}
        steps:
          - {id: s, type: sys.no_action}
        """
    )
    assert by_hand_trigger(one.triggers, "manual", {"a": 1}, now) == {
        "type": "manual",
        "arguments": {"a": 1},
        "scheduledAt": "2026-12-02T09:30:00.000Z",
        "cronExpression": "0 9 * * *",
        "timezone": "Europe/Berlin",
    }
    several = compile_yaml(
        """
        name: several
        triggers:
          - {type: schedule, cron: "0 9 * * *", timezone: Europe/Berlin}
          - {type: schedule, cron: "0 18 * * *"}
        steps:
          - {id: s, type: sys.no_action}
        """
    )
    assert by_hand_trigger(several.triggers, "function", {}, now) == {
        "type": "function",
        "arguments": {},
        "scheduledAt": "2026-12-02T09:30:00.000Z",
    }
    none = compile_yaml("name: none\nsteps:\n  - {id: s, type: sys.no_action}\n")
    assert by_hand_trigger(none.triggers, "function", {}, now) == {
        "type": "function",
        "arguments": {},
    }
