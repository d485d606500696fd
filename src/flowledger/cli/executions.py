"""``flowledger executions list|show|events|watch``: find executions and follow them.

All of these only read: on a missing SQLite file they say so (exit 2) and create nothing.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flowledger.cli import render
from flowledger.cli.common import (
    EXIT_INVALID,
    CursorOption,
    DbOption,
    JsonOption,
    PluginOption,
    build,
    err,
    execution_id,
    executions_app,
    existing,
    fail,
    out,
    print_json,
)
from flowledger.cli.logs import logs_line

if TYPE_CHECKING:
    from flowledger.app import App

IdArgument = Annotated[str, typer.Argument(metavar="ID", help="Execution id (or a prefix).")]


def _moment(text: str | None, option: str) -> datetime | None:
    """``--since``/``--until``: an ISO time (without a zone: this machine's) or a
    duration meaning that long ago (``2h``, ``30m``, ``7d``)."""
    if text is None:
        return None
    from flowledger.durations import parse_duration

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            return datetime.now(UTC) - parse_duration(text)
        except ValueError:
            fail(
                f"{option} {text!r} is neither a time (2026-11-29T10:00:00Z) nor a duration "
                "ago (30m, 2h, 7d)",
                EXIT_INVALID,
            )
    return moment if moment.tzinfo else moment.astimezone()


@executions_app.command("list")
def executions_list(
    status: Annotated[str | None, typer.Option("--status", help="Only this runtimeStatus.")] = None,
    workflow: Annotated[str | None, typer.Option("--workflow", help="Only this workflow.")] = None,
    correlation_id: Annotated[
        str | None, typer.Option("--correlation-id", help="Only this correlation id.")
    ] = None,
    created_by: Annotated[
        str | None,
        typer.Option("--created-by", help="Only those started by this (cli:run, api-token:ops)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Created at or after: a time, or a duration ago (2h)."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Created before: a time, or a duration ago (30m)."),
    ] = None,
    parent: Annotated[
        str | None,
        typer.Option("--parent", help="Only children of this execution (id or a prefix)."),
    ] = None,
    job: Annotated[
        str | None, typer.Option("--job", help="Only this job run's (id or a prefix).")
    ] = None,
    input_filters: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            metavar="PATH=VALUE",
            help="Only those whose input has this value at this path: orderId=1234, "
            "customer.id=7, sku='\"0042\"' (the string); VALUE is read as JSON when it is "
            "JSON, else as text. Repeat it: all must match.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Executions per page (1 to 1000).")] = 20,
    cursor: CursorOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List executions, newest first, with their total (--json: the execution documents)."""
    from flowledger.app import ListExecutions

    after, before = _moment(since, "--since"), _moment(until, "--until")
    request = build(
        lambda: ListExecutions(
            status=status,
            workflow=workflow,
            correlation_id=correlation_id,
            created_by=created_by,
            created_after=after,
            created_before=before,
            parent_id=parent,
            job_run_id=job,
            input=input_filters or [],
            limit=limit,
            cursor=cursor,
            id_prefixes=True,
            include_total=True,
        )
    )

    async def go(application: App) -> tuple[list[dict[str, Any]], str | None, int, set[str]]:
        from flowledger.app import GetExecution

        page = await application.executions.list(request)
        orphans = set()
        if not as_json:  # one row read for each running one listed
            for doc in page.items:
                if doc["runtimeStatus"] != "InProgress":
                    continue
                runner = await application.executions.runner(GetExecution(id=doc["id"]))
                if runner.state == "orphaned":
                    orphans.add(doc["id"])
        return [dict(doc) for doc in page.items], page.next_cursor, page.total or 0, orphans

    docs, next_cursor, total, orphans = existing(db, go)
    if as_json:
        # Decision: stdout stays the documents' array (scripts index it), and a script
        # that pages reads the footer (the cursor, the total) on stderr.
        print_json(docs)
        if next_cursor is not None:
            render.page_footer(err, len(docs), total, next_cursor, "execution")
        return
    render.execution_table(out, docs, orphans)
    render.page_footer(out, len(docs), total, next_cursor, "execution")


@executions_app.command("show")
def executions_show(
    execution: IdArgument,
    show_all: Annotated[
        bool, typer.Option("--all", help="Every step execution, even of big loops.")
    ] = False,
    timeline: Annotated[
        bool,
        typer.Option("--timeline", help="A text Gantt chart of attempts, waits and retries."),
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one execution with its steps (loops of many iterations summed up per step)."""
    from flowledger.app import GetExecution, ListEvents

    async def go(
        application: App,
    ) -> tuple[dict[str, Any], dict[str, int], list[Any], str | None]:
        full_id = await execution_id(application, execution)
        doc = dict(await application.executions.get(GetExecution(id=full_id)))
        # The timeline tells a retry's back-off from time the execution stood failed.
        events: list[Any] = []
        if timeline:
            async for page in application.executions.history(ListEvents(id=full_id)):
                events.extend(page)
        runner = (
            None
            if as_json or timeline
            else await application.executions.runner(GetExecution(id=full_id))
        )
        held = render.held_by(runner, db) if runner is not None else None
        return doc, await application.step_logs.counts(full_id), events, held

    doc, log_counts, events, held = existing(db, go)
    if as_json:
        print_json(doc)
    elif timeline:
        render.timeline(out, doc, show_all=show_all, events=events)
    else:
        render.execution_detail(out, doc, show_all=show_all, db=db, runner=held)
        line = logs_line(str(doc["id"]), log_counts, db)
        if line:
            out.print(line)


@executions_app.command("events")
def executions_events(
    execution: IdArgument,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep printing new events until the execution ends."),
    ] = False,
    after: Annotated[
        int, typer.Option("--after", help="Only events after this sequence number.")
    ] = 0,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print an execution's event history (one JSON object a line with --json)."""
    from flowledger.app import FollowEvents, ListEvents

    def emit(event: dict[str, Any]) -> None:
        if as_json:
            sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        else:
            out.print(render.event_row(event), soft_wrap=True)

    async def go(application: App) -> None:
        full_id = await execution_id(application, execution)
        if not follow:
            async for page in application.executions.history(
                ListEvents(id=full_id, after_seq=after)
            ):
                for event in page:
                    emit(dict(event))
            return
        stream = await application.streams.follow(FollowEvents(id=full_id, after_seq=after))
        async for item in stream:
            if item.event is not None:
                emit(dict(item.event))

    existing(db, go)


@executions_app.command("watch")
def executions_watch(
    execution: IdArgument,
    db: DbOption = None,
    plugin: PluginOption = None,
) -> None:
    """Follow any execution live, its children's lines too, as `run` shows them.

    Run here or by a worker; a child's lines read ``child 1a2b3c4d …``. Exits like `run`
    once the execution ends (3 once it waits for input). When no process carries it on (a
    killed run left it, or no worker has taken it), says so on stderr and who would, and
    watches on."""
    from flowledger.app import FollowEvents, GetExecution
    from flowledger.cli.progress import LiveProgress, PlainProgress, StepRow, step_rows

    async def go(application: App) -> dict[str, Any]:
        from flowledger.errors import FlowledgerError

        full_id = await execution_id(application, execution)
        doc = await application.executions.get(GetExecution(id=full_id))
        rows: list[StepRow] = []
        try:  # the definition gives every row up front; without it rows come with events
            workflow = await application.workflows.find(doc["workflowName"], doc["workflowVersion"])
            rows = step_rows(workflow)
        except FlowledgerError:
            pass
        started = doc.get("startedAt") or doc["createdAt"]
        progress: LiveProgress | PlainProgress = (
            LiveProgress(
                out,
                doc["workflowName"],
                rows,
                execution_id=full_id,
                started_at=datetime.fromisoformat(started.replace("Z", "+00:00")),
            )
            if out.is_terminal
            else PlainProgress(out)
        )
        with progress:
            progress.begin(full_id)
            if isinstance(progress, LiveProgress):
                counting = asyncio.create_task(_count_children(application, full_id, progress))
            telling = asyncio.create_task(_tell_runner(application, full_id, db))
            # Its children's lines too, labelled as `run` labels them (cli.progress).
            stream = await application.streams.follow(FollowEvents(id=full_id, children=True))
            async for item in stream:
                if item.event is None:
                    continue
                progress.update(item.execution_id, [dict(item.event)])
                if isinstance(progress, PlainProgress) and progress.closed:
                    stream.close()  # nobody reads on: stop watching (the execution goes on)
                    break
                own = item.execution_id == full_id
                if (
                    own
                    and item.event["kind"] == "execution.awaiting_input"
                    and await _waits(application, full_id)
                ):
                    stream.close()  # like `run`: stop (exit 3) while it waits for people
                    break
            telling.cancel()
            if isinstance(progress, LiveProgress):
                counting.cancel()
        return dict(await application.executions.get(GetExecution(id=full_id)))

    doc = existing(
        db, go, plugin, interrupted=lambda: f"stopped watching; execution {execution} goes on"
    )
    from flowledger.cli.control import report_end  # its end as `run` says it: who must answer

    report_end(doc, False, db, plugin)


#: How often ``watch`` looks at who holds the execution (one row read).
RUNNER_CHECK = 2.0


async def _tell_runner(application: App, full_id: str, db: str | None) -> None:
    """Say (on stderr) when no process carries the execution on, at once and again each
    time that changes; a queued one only when it is still queued at the next look (a
    worker takes a new one within moments)."""
    from flowledger.app import GetExecution

    told: str | None = None
    seen_queued = False
    while True:
        runner = await application.executions.runner(GetExecution(id=full_id))
        note = render.runner_note(runner, full_id, db)
        if runner.state == "queued" and not seen_queued:
            seen_queued, note = True, None
        if note is not None and note != told:
            err.print(note, soft_wrap=True)
        told = note  # said once; again after it changes (held again, then left again)
        await asyncio.sleep(RUNNER_CHECK)


async def _waits(application: App, full_id: str) -> bool:
    """Whether the execution is waiting for people now (not only at some past event)."""
    from flowledger.app import GetExecution

    doc = await application.executions.get(GetExecution(id=full_id))
    return doc["runtimeStatus"] == "AwaitingUserInput"  # typed as SPEC's names, not the enum


async def _count_children(application: App, parent: str, progress: Any) -> None:
    """While a sub-workflow step runs, count its ended children once a second (they
    run elsewhere: their events are not in this execution's stream)."""
    from flowledger.app import ListExecutions

    children = ListExecutions(parent_id=parent)
    while True:
        await asyncio.sleep(1.0)
        if progress.waits_for_children:
            progress.children_ended(await application.executions.count_ended(children))
