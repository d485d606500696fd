"""Pushing (all or nothing) and listing workflows with their next fire times."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from flowledger.app import (
    App,
    CreateEntityType,
    GetWorkflow,
    GetWorkflowVersion,
    ListWorkflows,
    NotFoundError,
    PushWorkflows,
    StartExecution,
    WorkflowText,
)
from flowledger.errors import DefinitionError, InputError
from flowledger.storage.schedules import ScheduleState
from tests.raw_sql import run_sql

MORNING = """\
name: morning
triggers:
  - {type: schedule, cron: "0 9 * * MON-FRI", timezone: Europe/Berlin, catch_up: latest}
  - {type: webhook, path: morning, auth: none}
steps:
  - {id: hello, type: sys.transform, input: {value: 1}}
"""
BROKEN = """\
name: broken
steps:
  - {id: a, type: sys.no_such_type}
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


async def test_push_is_all_or_nothing(app: App, tmp_path: Path, hello_file: str) -> None:
    good, bad = write(tmp_path, "morning.yaml", MORNING), write(tmp_path, "b.yaml", BROKEN)
    with pytest.raises(DefinitionError) as caught:
        await app.workflows.push(PushWorkflows(files=[good, hello_file, bad]))
    assert any(p.file == bad for p in caught.value.problems)
    assert await app.workflows.list(ListWorkflows()) == []  # nothing was pushed
    with pytest.raises(InputError, match="both define workflow 'morning'"):
        await app.workflows.push(
            PushWorkflows(files=[good], texts=[WorkflowText(text=MORNING, file="again.yaml")])
        )
    assert await app.workflows.list(ListWorkflows()) == []
    pushed = await app.workflows.push(PushWorkflows(files=[good, hello_file]))
    assert [(p["name"], p["version"], p["changed"]) for p in pushed] == [
        ("morning", 1, True),
        ("hello", 1, True),
    ]
    again = await app.workflows.push(PushWorkflows(files=[good]))
    assert again[0]["changed"] is False


async def test_a_push_checks_its_definition_off_the_event_loop(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large definition takes seconds to check; on the event loop it held every other
    request of a server (and its worker's lease renewals) for that long."""
    threads: list[threading.Thread] = []
    load_text = app.engine.load_text

    def recorded(text: str, file: str = "<string>") -> Any:
        threads.append(threading.current_thread())
        return load_text(text, file)

    monkeypatch.setattr(app.engine, "load_text", recorded)
    (pushed,) = await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=MORNING)]))
    assert pushed["changed"]
    assert threads and threading.main_thread() not in threads


GHOSTLY = """\
name: ghostly
triggers:
  - {type: schedule, cron: "0 9 * * *"}
  - {type: entity, entity_type: Ghost, events: [created]}
steps:
  - {id: a, type: sys.transform, input: {value: 1}}
"""


async def test_an_entity_trigger_on_no_known_type_is_pushed_with_a_warning(app: App) -> None:
    (pushed,) = await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=GHOSTLY)]))
    assert pushed["changed"] and pushed["version"] == 1
    assert pushed["warnings"] == [
        "triggers[1]: no entity type 'Ghost' exists yet; the trigger fires once it is created"
    ]
    await app.entities.create_type(CreateEntityType(name="Ghost"))
    (again,) = await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=GHOSTLY)]))
    assert again["warnings"] == [] and not again["changed"]


async def test_a_version_stored_before_its_text_was_kept_shows_its_document(
    db_url: str,
) -> None:
    async with App(db_url) as app:
        await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=MORNING)]))
    # As migration 0010 leaves the versions stored before it.
    assert run_sql(db_url, "UPDATE workflow_versions SET source = NULL") == 1
    async with App(db_url) as app:
        shown = await app.workflows.get_version(GetWorkflowVersion(name="morning", version=1))
    assert shown["source"].startswith("name: morning\n")
    assert yaml.safe_load(shown["source"]) == shown["document"]


async def test_every_start_by_name_runs_the_pushed_version(app: App) -> None:
    """Pushing an older definition again makes it live: a start by name (stored only, as
    the API's, or a name that is not a file, as the CLI's) runs it, not the newest."""
    newer = MORNING.replace("value: 1", "value: 2")
    for text in (MORNING, newer, MORNING):
        await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=text)]))
    for allow_file in (False, True):
        doc = await app.executions.start(StartExecution(workflow="morning", allow_file=allow_file))
        assert doc["workflowVersion"] == 1


async def test_list_gives_triggers_and_next_fire_times(app: App, tmp_path: Path) -> None:
    await app.workflows.push(PushWorkflows(files=[write(tmp_path, "m.yaml", MORNING)]))
    [listed] = await app.workflows.list(ListWorkflows())
    assert (listed["name"], listed["version"]) == ("morning", 1)
    schedule, webhook = listed["triggers"]
    assert schedule["type"] == "schedule" and webhook["type"] == "webhook"
    when = datetime.fromisoformat(str(schedule["nextFireAt"]))
    local = datetime.fromisoformat(str(schedule["nextFireAtLocal"]))
    assert when == local and (local.hour, local.minute) == (9, 0) and local.weekday() < 5
    assert when > app.engine.clock.now()
    assert webhook["nextFireAt"] is None
    assert (schedule["skippedTicks"], schedule["lastSkippedTickAt"]) == (0, None)
    assert "skippedTicks" not in webhook


async def test_a_schedule_says_how_many_ticks_overlap_skip_left(app: App, tmp_path: Path) -> None:
    await app.workflows.push(PushWorkflows(files=[write(tmp_path, "m.yaml", MORNING)]))
    tick = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    schedule_id = app.engine.load_text(MORNING).triggers[0].schedule_id
    assert schedule_id is not None
    state = ScheduleState("morning", schedule_id, "0 9 * * 1-5", "Europe/Berlin", tick, 3, tick)
    [before] = await app.engine.store.schedule_states() or [None]
    assert await app.engine.store.save_schedule_state(state, before)
    detail = await app.workflows.get(GetWorkflow(name="morning"))
    assert detail["live"] is not None
    schedule = detail["live"]["triggers"][0]
    assert (schedule["skippedTicks"], schedule["lastSkippedTickAt"]) == (
        3,
        "2026-11-30T09:00:00.000Z",
    )


async def test_get_versions_and_start_by_name(app: App, tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", MORNING)
    await app.workflows.push(PushWorkflows(files=[path]))
    await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=MORNING + "# v2\n")]))
    Path(path).write_text(MORNING.replace("value: 1", "value: 2"))
    await app.workflows.push(PushWorkflows(files=[path]))
    detail = await app.workflows.get(GetWorkflow(name="morning"))
    assert [v["version"] for v in detail["versions"]] == [1, 2]
    assert detail["live"] is not None and detail["live"]["version"] == 2
    first = await app.workflows.get_version(GetWorkflowVersion(name="morning", version=1))
    assert first["live"] is False and first["document"]["name"] == "morning"
    # The text it was first pushed as: the comment-only push stored no new version.
    assert first["source"] == MORNING
    second = await app.workflows.get_version(GetWorkflowVersion(name="morning", version=2))
    assert second["source"] == MORNING.replace("value: 1", "value: 2")
    doc = await app.executions.start(StartExecution(workflow="morning", version=1))
    assert doc["workflowVersion"] == 1
    with pytest.raises(NotFoundError):
        await app.workflows.get(GetWorkflow(name="nothing"))
    with pytest.raises(NotFoundError, match="has no version 9"):
        await app.workflows.get_version(GetWorkflowVersion(name="morning", version=9))


async def test_a_name_no_workflow_has_says_which_stored_names_are_close(app: App) -> None:
    """The web list filtered by a part of a name ("order") matched nothing in silence
    (tour 22B L10): the names it is part of come first, then a close spelling."""
    step = "steps:\n  - {id: a, type: sys.no_action}\n"
    names = ("order-pipeline", "score-order", "reorder", "nightly")
    texts = [WorkflowText(text=f"name: {name}\n{step}") for name in names]
    await app.workflows.push(PushWorkflows(texts=texts))
    await app.workflows.check_name(GetWorkflow(name="nightly"))  # there: nothing to say
    with pytest.raises(NotFoundError) as found:
        await app.workflows.check_name(GetWorkflow(name="Order"))
    assert str(found.value) == (
        "there is no workflow named 'Order'; "
        "did you mean 'order-pipeline', 'reorder' or 'score-order'?"
    )
    with pytest.raises(NotFoundError, match=r"named 'nigthly'; did you mean 'nightly'\?$"):
        await app.workflows.check_name(GetWorkflow(name="nigthly"))
    with pytest.raises(NotFoundError, match=r"named 'zzz'$"):
        await app.workflows.get(GetWorkflow(name="zzz"))
    with pytest.raises(NotFoundError, match="did you mean 'order-pipeline'"):
        await app.workflows.get(GetWorkflow(name="order-pipelin"))
