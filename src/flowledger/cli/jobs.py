"""`flowledger jobs`: run a job-run file in the foreground, and look at job runs."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from flowledger.app import (
    App,
    CancelJobRun,
    CreateJobRun,
    DriveJobRun,
    GetJobRun,
    JobRunDocument,
    JobRunItem,
    ListJobRuns,
    RetryJobRun,
)
from flowledger.cli.common import (
    DbOption,
    JsonOption,
    PluginOption,
    ReasonOption,
    command,
    err,
    existing,
    exit_code,
    job_run_id,
    jobs_app,
    out,
    print_json,
    show,
    with_app,
)
from flowledger.cli.progress import STATUS_STYLE
from flowledger.cli.render import error_text, when
from flowledger.cli.render import table as new_table

#: createdBy of job runs that `flowledger jobs run` creates.
JOBS_CREATOR = "cli:jobs"


@jobs_app.command("run")
def jobs_run(
    file: Annotated[str, typer.Argument(help="Job-run file (YAML or JSON) listing workflows.")],
    db: DbOption = None,
    as_json: JsonOption = False,
    plugin: PluginOption = None,
) -> None:
    """Run the listed workflows in order, each as its own execution, until one fails."""

    async def go(application: App) -> dict[str, Any]:
        jobs = application.job_runs
        created = await jobs.create(
            CreateJobRun(file=file, created_by=JOBS_CREATOR, hold=True, read_files=True)
        )
        if not as_json:
            out.print(
                f"job run {created['id']} ({created['name']}, {len(created['runs'])} workflows)"
            )
        return await _drive(application, created, as_json)

    _ended(with_app(db, go, plugin, runs=True), as_json, db)


@jobs_app.command("retry")
def jobs_retry(
    job_run: Annotated[str, typer.Argument(metavar="ID", help="Job-run id (or a prefix).")],
    db: DbOption = None,
    as_json: JsonOption = False,
    plugin: PluginOption = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Only retry; leave the running to workers.")
    ] = False,
) -> None:
    """Resume a failed job run: retry its failed workflows in place, then run the rest."""

    async def go(application: App) -> dict[str, Any]:
        full_id = await job_run_id(application, job_run)
        retried = await application.job_runs.retry(RetryJobRun(id=full_id, by="cli"))
        if detach:
            return dict(retried)
        if not as_json:
            again = [  # the retried ones run again; the ones never started have no execution
                f"#{r['index'] + 1} {r['workflowName']}"
                for r in retried["runs"]
                if r["executionId"] and r["runtimeStatus"] not in _ENDED
            ]
            out.print(f"job run {full_id} ({retried['name']}): retrying {', '.join(again)}")
        return await _drive(application, retried, as_json)

    doc = existing(db, go, plugin, runs=not detach)
    if detach:
        show(doc, as_json, lambda d: _summary(out, d))
        return
    _ended(doc, as_json, db)


async def _drive(application: App, doc: JobRunDocument, as_json: bool) -> dict[str, Any]:
    """Carry the job run on here to its end, or until it waits for a person, printing a
    line as each workflow ends (nothing but the JSON at the end with ``as_json``)."""
    total = len(doc["runs"])

    def finished(run: JobRunItem) -> None:
        line = Text.assemble(
            f"[{run['index'] + 1}/{total}] {run['workflowName']} v{run['workflowVersion']}  ",
            _status(run["runtimeStatus"]),
            f"  execution {run['executionId']}",
        )
        out.print(line, soft_wrap=True)
        if run["error"]:
            out.print(Text(f"  error: {error_text(run['error'])}", style="red"), soft_wrap=True)

    request = DriveJobRun(id=doc["id"])
    return dict(await application.job_runs.drive(request, on_run=None if as_json else finished))


def _ended(doc: dict[str, Any], as_json: bool, db: str | None) -> None:
    """How `jobs run` and `jobs retry` end: the job run, and its exit code."""
    if as_json:
        print_json(doc)
    else:
        _summary(out, doc)
    if doc["status"] == "AwaitingUserInput":
        waiting = next(r for r in doc["runs"] if r["runtimeStatus"] == "AwaitingUserInput")
        ask = command("executions", "show", waiting["executionId"], db=db)
        err.print(
            f"execution {waiting['executionId']} waits for input (`{ask}` says what it asks "
            f"and how to answer); after it, a `{command('worker', db=db)}` continues the "
            "job run",
            markup=False,
            soft_wrap=True,
        )
    raise typer.Exit(exit_code(doc["status"]))


@jobs_app.command("cancel")
def jobs_cancel(
    job_run: Annotated[str, typer.Argument(metavar="ID", help="Job-run id (or a prefix).")],
    reason: ReasonOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    plugin: PluginOption = None,
) -> None:
    """Cancel the workflow a job run is on; the job run ends Cancelled."""

    async def go(application: App) -> dict[str, Any]:
        full_id = await job_run_id(application, job_run)
        why = reason or "job run cancelled from the command line"
        return dict(
            await application.job_runs.cancel(
                CancelJobRun(id=full_id, by="cli", reason=why, settle=True)
            )
        )

    doc = existing(db, go, plugin)
    show(doc, as_json, lambda d: _summary(out, d))
    raise typer.Exit(0 if doc["status"] == "Cancelled" else 1)


@jobs_app.command("show")
def jobs_show(
    job_run: Annotated[str, typer.Argument(metavar="ID", help="Job-run id (or a prefix).")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a job run and the execution of each of its workflows."""

    async def go(application: App) -> dict[str, Any]:
        full_id = await job_run_id(application, job_run)
        return dict(await application.job_runs.get(GetJobRun(id=full_id)))

    doc = existing(db, go)
    if as_json:
        print_json(doc)
        return
    _summary(out, doc)
    out.print(
        f"started:  {when(doc['startedAt']) or '-'}   ended: {when(doc['completedAt']) or '-'}"
    )
    table = new_table("#", "workflow", "status", "execution", "input")
    for run in doc["runs"]:
        table.add_row(
            str(run["index"] + 1),
            f"{run['workflowName']} v{run['workflowVersion']}",
            _status(run["runtimeStatus"]),
            run["executionId"] or "-",
            _short(run["input"]),
        )
    out.print(table)
    for run in doc["runs"]:
        if run["error"]:
            line = f"error of #{run['index'] + 1}: {error_text(run['error'])}"
            out.print(Text(line, style="red"), soft_wrap=True)


@jobs_app.command("list")
def jobs_list(
    limit: Annotated[
        int, typer.Option("--limit", help="Job runs to show, newest first (1 to 1000).")
    ] = 20,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List job runs, newest first."""

    async def go(application: App) -> list[dict[str, Any]]:
        return [dict(d) for d in await application.job_runs.list(ListJobRuns(limit=limit))]

    docs = existing(db, go)
    if as_json:
        print_json(docs)
        return
    if not docs:
        out.print("no job runs")
        return
    table = new_table("id", "name", "status", "workflows", "created")
    table.columns[0].no_wrap, table.columns[0].min_width = True, 36
    for doc in docs:
        table.add_row(
            doc["id"],
            doc["name"],
            _status(doc["status"]),
            _counts(doc),
            when(doc["createdAt"]),
        )
    out.print(table)


def _summary(console: Console, doc: dict[str, Any]) -> None:
    line = Text.assemble(
        _status(doc["status"]), f"  job {doc['name']}  {_counts(doc)}  id {doc['id']}"
    )
    console.print(line, soft_wrap=True)


def _counts(doc: dict[str, Any]) -> str:
    """``2/3 workflows ended`` — how far the job run got."""
    runs = doc["runs"]
    ended = sum(1 for r in runs if r["runtimeStatus"] in _ENDED)
    return f"{ended}/{len(runs)} workflows ended"


_ENDED = frozenset({"Completed", "CompletedWithNoActionTaken", "Failed", "Cancelled"})


def _status(status: str | None) -> Text:
    if status is None:
        return Text("not started", style="dim")
    style = STATUS_STYLE.get(status, "")
    style = "green" if status == "CompletedWithNoActionTaken" else style
    return Text(status, style="cyan" if status == "AwaitingUserInput" else style)


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
