"""The commands that run workflows and migrate: ``run``, ``start``, ``worker``, ``validate``
and ``db upgrade`` (SPEC §5)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import typer

from flowledger.app import (
    Adopted,
    App,
    RunExecution,
    StartExecution,
    ValidateWorkflow,
    upgrade_database,
)
from flowledger.cli.common import (
    EXIT_FAILED,
    EXIT_INVALID,
    DbOption,
    InputFileOption,
    InputOption,
    JsonOption,
    LogFormatOption,
    PluginOption,
    app,
    as_option,
    build,
    call,
    command,
    db_app,
    err,
    existing,
    fail,
    lease_length,
    make_app,
    opened_waiting,
    out,
    read_input,
    say_error,
    say_problems,
    service_logging,
    shown_url,
    traced,
    with_app,
    within,
)
from flowledger.cli.progress import LiveProgress, PlainProgress, step_rows
from flowledger.config import Settings
from flowledger.definition.compiled import CompiledWorkflow
from flowledger.errors import DefinitionError, InputError
from flowledger.logs import log_extra
from flowledger.runtime.engine import default_db_url

#: createdBy of executions that `flowledger run` starts (and finishes again after a crash).
RUN_CREATOR = "cli:run"


@app.command()
def run(
    file: Annotated[str, typer.Argument(help="Workflow definition (YAML or JSON).")],
    input: InputOption = None,
    input_file: InputFileOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    correlation_id: Annotated[
        str | None, typer.Option("--correlation-id", help="Groups related executions.")
    ] = None,
    plugin: PluginOption = None,
    new: Annotated[
        bool,
        typer.Option(
            "--new",
            help="Start a new execution even when a stopped run of this workflow left one "
            "with the same input unfinished (by default this run carries that one on).",
        ),
    ] = False,
) -> None:
    """Run a workflow to its end on the embedded database, showing its steps live."""
    arguments = read_input(input, input_file)

    def adopted(left: Adopted) -> None:
        if left.resumed:
            err.print(
                f"resuming execution {left.execution_id} of {left.workflow}, left unfinished "
                "by a stopped run; --new starts another"
            )
        elif left.status is None:
            err.print(
                f"finishing execution {left.execution_id} of {left.workflow}, left "
                "unfinished by a stopped run"
            )
        else:
            err.print(f"execution {left.execution_id}: {left.status}")

    url = db or default_db_url()
    started: list[str] = []
    checked: list[CompiledWorkflow] = []

    def check(application: App) -> None:  # a file that is not a workflow creates no database
        checked.append(application.workflows.validate(ValidateWorkflow(file=file)))
        err.print(f"database: {shown_url(url)}", soft_wrap=True)

    async def go(application: App) -> dict[str, Any]:
        workflow = checked[0]
        request = RunExecution(
            workflow=workflow,
            input=arguments,
            correlation_id=correlation_id,
            created_by=RUN_CREATOR,
            finish_abandoned=True,  # finish what an earlier, stopped `run` left first
            resume_same=not new,
        )
        progress = (
            None
            if as_json
            else LiveProgress(out, workflow.name, step_rows(workflow))
            if out.is_terminal
            else PlainProgress(out)
        )

        def begin(execution_id: str) -> None:
            started.append(execution_id)
            if progress is not None:
                progress.begin(execution_id)

        if progress is None:
            done = await application.executions.run(request, on_adopted=adopted, on_started=begin)
            return dict(done)
        with progress:
            done = await application.executions.run(
                request, on_events=progress.update, on_adopted=adopted, on_started=begin
            )
        return dict(done)

    def interrupted() -> str:
        if not started:
            return "interrupted before the execution was stored"
        return (
            f"interrupted; execution {started[0]} is saved: any `{command('worker', db=db)}` "
            "carries it on (and the next `flowledger run` of the same workflow and input "
            "resumes it); "
            f"`{command('executions', 'watch', started[0], db=db)}` follows it"
        )

    doc = with_app(url, go, plugin, interrupted=interrupted, before_open=check, runs=True)
    from flowledger.cli.control import report_end  # keeps `executions list` first

    report_end(doc, as_json, db, plugin)


@app.command()
def start(
    workflow: Annotated[
        str, typer.Argument(metavar="FILE_OR_NAME", help="A definition file or a pushed name.")
    ],
    input: InputOption = None,
    input_file: InputFileOption = None,
    db: DbOption = None,
    correlation_id: Annotated[
        str | None, typer.Option("--correlation-id", help="Groups related executions.")
    ] = None,
    plugin: PluginOption = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key",
            help="Start once per key: again with the same key prints the execution it "
            "started (a retried deploy script starts nothing twice).",
        ),
    ] = None,
) -> None:
    """Enqueue an execution for the workers and print its id.

    A pushed workflow started by name needs none of the workers' plugins here."""
    arguments = read_input(input, input_file)
    request = build(
        lambda: StartExecution(
            workflow=workflow,
            input=arguments,
            correlation_id=correlation_id,
            created_by="cli:start",
            idempotency_key=idempotency_key,
            allow_file=True,  # FILE_OR_NAME: a file of the user's own machine
        )
    )
    doc = with_app(db, lambda application: application.executions.start(request), plugin)
    out.print(doc["id"], highlight=False)


@app.command()
def worker(
    db: DbOption = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Executions run at once (1 to 1000).")
    ] = 8,
    lease: Annotated[
        str | None,
        typer.Option(
            "--lease",
            help="Lease length (default $FLOWLEDGER_LEASE or 30s); a dead worker's "
            "work moves to others after it.",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            help="Serve Prometheus /metrics (and /healthz, /readyz) on this port.",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", help="Address the metrics port listens on.")
    ] = "127.0.0.1",
    plugin: PluginOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Run queued, due and orphaned executions until stopped (SIGTERM drains).

    Logs one line per execution it runs and lets go (id, workflow, status, duration).
    FLOWLEDGER_OTEL=1 writes OpenTelemetry spans of what it runs, as serve does."""
    settings = Settings.from_env()
    service_logging(log_format, settings)
    lease_span = lease_length(lease)
    within(concurrency, 1, 1000, "--concurrency")

    async def go() -> None:
        from contextlib import AsyncExitStack

        from sqlalchemy.engine import make_url

        from flowledger.heap import freeze_heap
        from flowledger.worker.watchdog import watch_loop
        from flowledger.worker.worker import Worker, WorkerOptions

        application = App(db or default_db_url(), plugins=plugin or (), lease=lease_span)
        async with opened_waiting(application), AsyncExitStack() as serving:
            engine = application.engine
            if metrics_port is not None:  # counted from the start, not from the first scrape
                application.metrics  # noqa: B018 - the first use attaches the observer
            flush = traced(application)
            if flush is not None:
                serving.callback(flush)
            if metrics_port is not None:
                from flowledger.api.sidecar import BindError, metrics_server

                try:
                    await serving.enter_async_context(
                        metrics_server(application, metrics_host, metrics_port)
                    )
                except BindError as exc:
                    fail(str(exc), EXIT_FAILED)
            options = WorkerOptions(concurrency=concurrency, lease=lease_span)
            runner = Worker(engine, options)
            watchdog = serving.enter_context(watch_loop(settings.loop_stall.total_seconds()))
            watchdog.handle_stops(runner.stop)
            logging.getLogger("flowledger.worker").info(
                "worker %s on %s, concurrency %d%s",
                engine.owner,
                make_url(engine.db_url).render_as_string(hide_password=True),
                concurrency,
                f", metrics on {metrics_host}:{metrics_port}" if metrics_port is not None else "",
                extra=log_extra("start_worker"),
            )
            freeze_heap()  # else each full collection walks the start-up heap: 30-50 ms stalls
            await runner.run()
            if runner.stopped_because is not None:  # said in the log as it stopped
                fail(f"worker stopped: {runner.stopped_because}", EXIT_FAILED)
            logging.getLogger("flowledger.worker").info(
                "worker stopped; %d executions ended in it (the unfinished were handed back)",
                runner.completed,
                extra=log_extra("stop_worker"),
            )

    call(go, db=db)


@app.command()
def validate(
    files: Annotated[
        list[str], typer.Argument(metavar="FILE...", help="Workflow or job-run files to check.")
    ],
    plugin: PluginOption = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Also check the pushed workflows that job files and sub-workflow steps "
            "name, in this database (never created). Without it, validating opens no "
            "database.",
        ),
    ] = None,
) -> None:
    """Check workflow definitions and job-run files without running them.

    Every problem of every file is reported at once."""
    bad = 0

    async def check_each(application: App) -> None:
        nonlocal bad
        for file in files:
            try:
                request = ValidateWorkflow(file=file, stored=db is not None)
                checked = await application.workflows.check(request)
            except DefinitionError as exc:  # its problems are said: go on with the next file
                say_problems(exc)
                bad += 1
                continue
            except InputError as exc:
                say_error(as_option(exc))
                bad += 1
                continue
            count = checked.count
            if checked.kind == "job":
                noun = "workflow" if count == 1 else "workflows"
                out.print(f"{file}: ok (job {checked.name}, {count} {noun} checked)")
            else:
                out.print(f"{file}: ok ({checked.name}, {count} step{'' if count == 1 else 's'})")
            for warning in checked.warnings:  # as a push says them
                err.print(f"warning: {file}: {warning}", highlight=False, soft_wrap=True)

    if db is None:
        application = make_app(None, plugin)  # opens no database
        call(lambda: check_each(application))
    else:  # opened once for every file: one it cannot open is said once
        existing(db, check_each, plugin)
    if bad:
        raise typer.Exit(EXIT_INVALID)


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Apply pending schema migrations (every command also does this on first use)."""
    applied = call(lambda: upgrade_database(db or default_db_url(), Settings.from_env()))
    if applied:
        out.print("applied migrations: " + ", ".join(applied))
    else:
        out.print("the database schema is up to date")
