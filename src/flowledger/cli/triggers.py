"""`flowledger workflows show|disable|enable|delete|trigger|backfill`: operate pushed
workflows and their triggers (app.workflow_ops)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flowledger.cli.common import (
    EXIT_INVALID,
    DbOption,
    InputFileOption,
    InputOption,
    JsonOption,
    build,
    existing,
    fail,
    out,
    print_json,
    read_input,
    show,
    workflows_app,
)
from flowledger.cli.workflows import _next_text, _skipped_text, _summary

if TYPE_CHECKING:
    from flowledger.app import App

NameArgument = Annotated[str, typer.Argument(metavar="NAME", help="A pushed workflow's name.")]


@workflows_app.command("show")
def show_workflow(
    name: NameArgument,
    version: Annotated[
        int | None,
        typer.Option(
            "--version", min=1, metavar="N", help="This stored version (default: the pushed one)."
        ),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print a workflow's definition, its triggers and its stored versions."""
    from flowledger.app.models import GetWorkflow, GetWorkflowVersion

    async def go(application: App) -> dict[str, Any]:
        detail: dict[str, Any] = dict(await application.workflows.get(GetWorkflow(name=name)))
        live = detail["live"]
        number = version or (live["version"] if live else detail["versions"][-1]["version"])
        chosen = await application.workflows.get_version(
            GetWorkflowVersion(name=name, version=number)
        )
        return {**detail, "shown": dict(chosen)}

    show(existing(db, go), as_json, _render_workflow)


def _render_workflow(detail: dict[str, Any]) -> None:

    live, shown = detail["live"], detail["shown"]
    if live is None:
        state = "not pushed (its triggers never fire)"
    elif live["enabled"]:
        state = f"pushed version {live['version']}, enabled"
    else:
        state = f"pushed version {live['version']}, DISABLED since {live['disabledAt']}"
    out.print(f"workflow {detail['name']}: {state}", markup=False)
    versions = ", ".join(
        f"{v['version']}{' (pushed)' if v['live'] else ''}" for v in detail["versions"]
    )
    out.print(f"versions: {versions}", markup=False)
    if live is not None and shown["live"]:
        for trigger in live["triggers"]:
            when = _next_text(trigger)
            next_fire = f", next {when}" if when and live["enabled"] else ""
            skipped = _skipped_text(trigger)
            out.print(f"trigger: {_summary(dict(trigger))}{next_fire}{skipped}", markup=False)
    out.print(f"--- version {shown['version']} (created {shown['createdAt']})", markup=False)
    # As it was pushed, comments and layout kept (app.workflow_ops: `source`).
    out.print(str(shown["source"]).rstrip(), markup=False, highlight=False, soft_wrap=True)


@workflows_app.command("disable")
def disable(name: NameArgument, db: DbOption = None) -> None:
    """Stop the workflow's triggers until it is enabled again.

    Its schedules, webhooks and entity triggers do nothing meanwhile; it can still be
    started by hand."""
    _switch(name, False, False, db)


@workflows_app.command("enable")
def enable(
    name: NameArgument,
    catch_up: Annotated[
        bool,
        typer.Option(
            "--catch-up",
            help="Also fire the schedule ticks missed while disabled (as each schedule's "
            "catch_up allows); by default they are skipped.",
        ),
    ] = False,
    db: DbOption = None,
) -> None:
    """Resume the workflow's triggers; its schedules count from now."""
    _switch(name, True, catch_up, db)


def _switch(name: str, enabled: bool, catch_up: bool, db: str | None) -> None:
    from flowledger.app.models import SwitchWorkflow

    request = build(lambda: SwitchWorkflow(name=name, enabled=enabled, catch_up=catch_up))
    done = existing(db, lambda application: application.workflows.switch(request))
    word = "enabled" if enabled else "disabled"
    if done["changed"]:
        out.print(f"{name}: triggers {word}", markup=False)
    else:
        out.print(f"{name}: triggers were already {word}", markup=False)


@workflows_app.command("delete")
def delete(
    name: NameArgument,
    force: Annotated[
        bool,
        typer.Option("--force", help="Delete even while executions of it are unfinished."),
    ] = False,
    db: DbOption = None,
) -> None:
    """Un-push a workflow: its triggers stop and `workflows list` forgets it.

    Its stored versions and its executions stay as history (`executions prune` removes
    old ones)."""
    from flowledger.app.models import DeleteWorkflow

    request = build(lambda: DeleteWorkflow(name=name, force=force))
    done = existing(db, lambda application: application.workflows.delete(request))
    out.print(
        f"deleted {name}; its {done['versionsKept']} stored versions and its executions "
        "are kept as history",
        markup=False,
    )
    if done["unfinished"]:
        out.print(f"{done['unfinished']} unfinished executions of it run on", markup=False)


@workflows_app.command("trigger")
def trigger(
    name: NameArgument,
    input: InputOption = None,
    input_file: InputFileOption = None,
    version: Annotated[
        int | None,
        typer.Option(
            "--version", min=1, metavar="N", help="This version (default: the pushed one)."
        ),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a pushed workflow now, for the workers, and print the execution id.

    Its trigger document's type is manual."""
    from flowledger.app.models import TriggerWorkflow

    arguments = read_input(input, input_file)
    request = build(
        lambda: TriggerWorkflow(
            name=name, input=arguments, version=version, created_by="cli:trigger"
        )
    )
    doc = existing(db, lambda application: application.workflows.trigger(request))
    if as_json:
        print_json(doc)
    else:
        out.print(doc["id"], markup=False, highlight=False)


@workflows_app.command("backfill")
def backfill(
    name: NameArgument,
    start: Annotated[
        str,
        typer.Option("--from", metavar="TIME", help="First moment, ISO-8601 with a zone (…Z)."),
    ],
    end: Annotated[
        str, typer.Option("--to", metavar="TIME", help="Last moment, ISO-8601 with a zone.")
    ],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start one execution per schedule tick from --from to --to (inclusive).

    Each tick starts once: ticks the scheduler (or an earlier backfill) started are not
    started again."""
    from flowledger.app.models import BackfillWorkflow

    first, last = _moment(start, "--from"), _moment(end, "--to")
    request = build(
        lambda: BackfillWorkflow(name=name, start=first, end=last, created_by="cli:backfill")
    )
    done = existing(db, lambda application: application.workflows.backfill(request))
    if as_json:
        print_json(done)
        return
    for tick in done:
        note = " (started before)" if tick["duplicate"] else ""
        out.print(f"{tick['scheduledAt']}  {tick['executionId']}{note}", markup=False)
    fresh = sum(1 for t in done if not t["duplicate"])
    out.print(f"started {fresh} of {len(done)} ticks", markup=False)


def _moment(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option}: {text!r} is not an ISO-8601 time (e.g. 2026-11-22T10:00:00Z)", 2)
    if moment.tzinfo is None:
        fail(f"{option}: give a time zone (e.g. 2026-11-22T10:00:00Z)", EXIT_INVALID)
    return moment
