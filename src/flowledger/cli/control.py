"""``flowledger executions input|cancel|retry|rerun``: act on executions from outside.

Each records what was asked (a signal, new attempts, a new execution), then carries
the execution on in this process like ``run`` does — unless a worker holds it, in
which case the worker goes on and this command reports what it sees.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from flowledger.app import (
    App,
    CancelExecution,
    GetExecution,
    PendingInputs,
    RerunExecution,
    RetryExecution,
    SubmitInput,
    parse_json,
)
from flowledger.cli import render
from flowledger.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_PENDING,
    DbOption,
    JsonOption,
    PluginOption,
    ReasonOption,
    build,
    command,
    err,
    execution_id,
    executions_app,
    existing,
    exit_code,
    fail,
    out,
    print_json,
)
from flowledger.cli.who import cli_user
from flowledger.runtime.status import ExecutionStatus

if TYPE_CHECKING:
    from flowledger.runtime.observer import EventCallback

IdArgument = Annotated[str, typer.Argument(metavar="ID", help="Execution id (or a prefix).")]
DetachOption = Annotated[
    bool, typer.Option("--detach", help="Only record it; leave the running to workers.")
]


@contextlib.contextmanager
def _progress(
    quiet: bool, execution_id: str | None, ancestors: list[str] | None = None
) -> Iterator[EventCallback | None]:
    """What the control verbs that carry an execution on here show as it runs: its step
    events, a line each (PlainProgress, on a terminal too: the live table of ``run`` is
    drawn from the workflow's start, and these take it up midway); nothing when ``quiet``
    (``--json``, ``--detach``). Lines of another execution name it as ``run``'s do: a
    child, or one of the ``ancestors`` that an answer to a child carries on (a parent)."""
    if quiet:
        yield None
        return
    from flowledger.cli.progress import PlainProgress  # only for a verb that runs here

    with PlainProgress(out, execution_id, ancestors or ()) as progress:
        yield progress.update


async def _ancestors(application: App, execution_id: str, quiet: bool) -> list[str]:
    """The executions above this one (its parent's, up to the root), for the lines of
    those an answer to it carries on; none to look up when nothing is printed."""
    if quiet:
        return []
    return await application.executions.ancestors(GetExecution(id=execution_id))


def _finish(
    doc: dict[str, Any],
    as_json: bool,
    db: str | None,
    plugins: list[str] | None,
    detached: bool = False,
) -> None:
    if detached:  # only recorded: what it ends as is for whoever runs it to decide
        if as_json:
            print_json(doc)
        else:
            out.print(
                f"recorded; execution {doc['id']} is {doc['runtimeStatus']} and a worker "
                "carries it on",
                markup=False,
            )
        raise typer.Exit(EXIT_OK)
    status = ExecutionStatus(doc["runtimeStatus"])
    if not status.terminal and status != ExecutionStatus.AWAITING_USER_INPUT:
        # A live process elsewhere holds it (one that is gone was taken over): it goes on.
        if as_json:
            print_json(doc)
        else:
            render.summary(out, doc)
            out.print(_held_elsewhere(doc, "it carries it on", db), markup=False)
        raise typer.Exit(EXIT_PENDING)
    report_end(doc, as_json, db, plugins)


def _held_elsewhere(doc: dict[str, Any], what: str, db: str | None) -> str:
    return (
        f"recorded; execution {doc['id']} is {doc['runtimeStatus']} in another process that "
        f"holds it, and {what} (`{command('executions', 'watch', doc['id'], db=db)}` "
        "follows it; if that process has died on another machine, whoever takes it over "
        "once its lease lapses does)"
    )


def report_end(
    doc: dict[str, Any], as_json: bool, db: str | None, plugins: list[str] | None
) -> NoReturn:
    """An execution's end as `run` and the control verbs print it, with its exit code."""
    pending = waiting_for(doc, db, plugins)
    if as_json:
        print_json(doc)
    else:
        render.summary(out, doc)
        if pending:
            render.pending_inputs(out, pending, db)
    if pending == []:
        # Answered, not carried on here (its plugins are elsewhere): nothing to ask.
        if not as_json:
            out.print(
                f"every answer is recorded; execution {doc['id']} goes on in a worker "
                f"that has its plugins ({command('worker', '--plugin', 'FILE', db=db)}), "
                "or here with this command's --plugin FILE",
                markup=False,
            )
        raise typer.Exit(EXIT_OK)
    raise typer.Exit(exit_code(doc["runtimeStatus"]))


def waiting_for(
    doc: dict[str, Any], db: str | None, plugins: list[str] | None
) -> list[dict[str, Any]] | None:
    """Who must answer what, when the execution stopped for people (None when it did
    not); an empty list when it waits but every answer is already recorded."""
    if doc["runtimeStatus"] != ExecutionStatus.AWAITING_USER_INPUT:
        return None

    async def go(application: App) -> list[dict[str, Any]]:
        found = await application.executions.pending_inputs(PendingInputs(id=doc["id"]))
        return [dict(item) for item in found]

    return existing(db, go, plugins)


@executions_app.command("input")
def executions_input(
    execution: IdArgument,
    step: Annotated[
        str,
        typer.Argument(
            metavar="STEP_ID",
            help="The waiting step's id, or its step execution id when it waits in several "
            "loop iterations.",
        ),
    ],
    data: Annotated[str, typer.Option("--data", help="The input, as JSON.")],
    db: DbOption = None,
    as_json: JsonOption = False,
    plugin: PluginOption = None,
    detach: DetachOption = False,
) -> None:
    """Submit the data a waiting sys.wait_for_input step asks for."""
    value = build(lambda: parse_json(data, "--data"))

    async def go(application: App) -> dict[str, Any]:
        full_id = await execution_id(application, execution)
        request = SubmitInput(id=full_id, step=step, data=value, by=cli_user(), settle=not detach)
        above = await _ancestors(application, full_id, as_json or detach)
        with _progress(as_json or detach, full_id, above) as progress:
            return dict(await application.executions.submit_input(request, on_events=progress))

    _finish(existing(db, go, plugin, runs=not detach), as_json, db, plugin, detach)


@executions_app.command("cancel")
def executions_cancel(
    execution: IdArgument,
    reason: ReasonOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    plugin: PluginOption = None,
) -> None:
    """Cancel an execution: running steps are stopped, children are cancelled too."""

    async def go(application: App) -> dict[str, Any]:
        full_id = await execution_id(application, execution)
        why = reason or "cancelled from the command line"
        request = CancelExecution(id=full_id, by=cli_user(), reason=why, settle=True)
        return dict(await application.executions.cancel(request))

    doc = existing(db, go, plugin, runs=True)  # it settles the cancel here
    if as_json:
        print_json(doc)
    else:
        render.summary(out, doc)
    if doc["runtimeStatus"] != ExecutionStatus.CANCELLED:
        # Its holder is alive elsewhere (a gone one was taken over): it cancels it.
        if not as_json:
            out.print(_held_elsewhere(doc, "that process cancels it", db), markup=False)
        raise typer.Exit(EXIT_PENDING)
    children = doc.get("pendingChildren") or []
    if children:
        if not as_json:
            out.print(
                f"{len(children)} of its child executions still run in other processes, which "
                f"cancel them: {', '.join(children)}",
                markup=False,
            )
        raise typer.Exit(EXIT_PENDING)
    raise typer.Exit(EXIT_OK)


@executions_app.command("retry")
def executions_retry(
    execution: IdArgument,
    db: DbOption = None,
    as_json: JsonOption = False,
    plugin: PluginOption = None,
    detach: DetachOption = False,
) -> None:
    """Re-run the failed steps of a failed execution in place (attempt + 1)."""

    def retrying(steps: list[str]) -> None:  # before what runs again prints its lines
        if as_json:
            return
        named = ", ".join(steps)
        what = (
            f"step {named}" if len(steps) == 1 else f"steps {named}" if steps else "the execution"
        )
        out.print(f"retrying {what}", markup=False)

    async def go(application: App) -> dict[str, Any]:
        full_id = await execution_id(application, execution)
        request = RetryExecution(id=full_id, by=cli_user(), settle=not detach)
        above = await _ancestors(application, full_id, as_json or detach)
        with _progress(as_json or detach, full_id, above) as progress:
            retried = await application.executions.retry(
                request, on_events=progress, on_retried=retrying
            )
        return dict(retried.execution)

    _finish(existing(db, go, plugin, runs=not detach), as_json, db, plugin, detach)


@executions_app.command("rerun")
def executions_rerun(
    execution: IdArgument,
    from_step: Annotated[
        str, typer.Option("--from", help="The first step to run again; earlier ones are reused.")
    ],
    version: Annotated[
        str,
        typer.Option(
            "--version",
            metavar="pinned|latest",
            help="pinned (the original's version) or latest.",
        ),
    ] = "pinned",
    db: DbOption = None,
    as_json: JsonOption = False,
    plugin: PluginOption = None,
    detach: DetachOption = False,
) -> None:
    """Start a new execution that reuses the outputs of the steps before --from."""
    if version not in ("pinned", "latest"):
        fail(f"--version must be pinned or latest, not {version!r}", EXIT_INVALID)

    async def go(application: App) -> tuple[dict[str, Any], str | None]:
        full_id = await execution_id(application, execution)
        original = await application.executions.get(GetExecution(id=full_id))
        request = RerunExecution(
            id=full_id, from_step=from_step, version=version, by=cli_user(), settle=not detach
        )
        with _progress(as_json or detach, None) as progress:
            doc = await application.executions.rerun(request, on_events=progress)
        # its summary names both: "id NEW" and "rerun of: OLD"
        return dict(doc), original.get("jobRunId")

    doc, job_run = existing(db, go, plugin, runs=not detach)
    if job_run:  # on stderr: --json's output stays the document
        err.print(_outside_the_job_run(doc, job_run, db), soft_wrap=True, highlight=False)
    _finish(doc, as_json, db, plugin, detach)


def _outside_the_job_run(doc: dict[str, Any], job_run: str, db: str | None) -> str:
    """Decision: a rerun is a new execution of its own, never part of the job run its
    original belongs to (its ``jobRunId`` is null), as SPEC's rerun is "a new execution":
    the job run neither waits for it nor goes on after it. A rerun may be of any ended
    item, a Completed job run's too (following it would run the later items again), and
    the job run's record keeps what ran in it; resuming a Failed one is a retry's job
    (JobRuns.retry_execution), in place, on the item's own version."""
    retry = command("jobs", "retry", job_run, db=db)
    return (
        f"note: the rerun {doc['id']} is not part of job run {job_run}, which its original "
        f"{doc['rerunOf']} belongs to: the job run neither waits for it nor goes on after "
        f"it; to resume a Failed job run, retry it instead (`{retry}`)"
    )
