"""The ``flowledger`` command (SPEC §5)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Annotated, Any

import typer

from flowledger import __version__
from flowledger.app import (
    Adopted,
    App,
    GetExecution,
    ListExecutions,
    RunExecution,
    StartExecution,
    ValidateWorkflow,
    json_object,
    parse_json,
    read_json_file,
    upgrade_database,
)
from flowledger.cli import render
from flowledger.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    DbOption,
    JsonOption,
    PluginOption,
    app,
    build,
    call,
    db_app,
    err,
    execution_id,
    executions_app,
    exit_code,
    fail,
    lease_length,
    make_app,
    out,
    print_json,
    show,
    with_app,
)
from flowledger.cli.progress import LiveProgress, PlainProgress
from flowledger.config import ConfigError, Settings
from flowledger.errors import DefinitionError
from flowledger.logs import configure_logging, log_extra
from flowledger.runtime.engine import default_db_url
from flowledger.worker.worker import Worker, WorkerOptions

#: createdBy of executions that `flowledger run` starts (and finishes again after a crash).
RUN_CREATOR = "cli:run"


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", help="Print flowledger's version and exit.")
    ] = False,
) -> None:
    """A durable, declarative workflow engine."""
    if version:
        out.print(f"flowledger {__version__}", markup=False)
        raise typer.Exit(EXIT_OK)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        fail(str(exc), EXIT_INVALID)
    # Logs go to stderr; stdout stays the command's output (--json stays parseable).
    configure_logging("json" if settings.log_format == "json" else "text", _log_level(settings))


def _log_level(settings: Settings, default: str = "WARNING") -> str:
    return settings.log_level or default


@app.command()
def run(
    file: Annotated[str, typer.Argument(help="Workflow definition (YAML or JSON).")],
    input: Annotated[str | None, typer.Option("--input", help="Input as JSON.")] = None,
    input_file: Annotated[str | None, typer.Option("--input-file", help="Input JSON file.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    correlation_id: Annotated[str | None, typer.Option("--correlation-id")] = None,
    plugin: PluginOption = None,
) -> None:
    """Run a workflow to its end on the embedded database, showing its steps live."""
    if input is not None and input_file is not None:
        fail("give --input or --input-file, not both", EXIT_INVALID)

    def adopted(left: Adopted) -> None:
        if left.status is None:
            err.print(
                f"finishing execution {left.execution_id} of {left.workflow}, left "
                "unfinished by a stopped run",
                markup=False,
            )
        else:
            err.print(f"execution {left.execution_id}: {left.status}", markup=False)

    arguments: dict[str, Any] = {}
    if input is not None:
        arguments = build(lambda: json_object(parse_json(input, "--input"), "the input"))
    elif input_file is not None:
        arguments = build(lambda: json_object(read_json_file(input_file), "the input"))

    async def go(application: App) -> dict[str, Any]:
        workflow = application.workflows.validate(ValidateWorkflow(file=file))
        request = RunExecution(
            workflow=workflow,
            input=arguments,
            correlation_id=correlation_id,
            created_by=RUN_CREATOR,
            finish_abandoned=True,  # finish what an earlier, stopped `run` left first
        )
        progress = (
            None
            if as_json
            else LiveProgress(out, workflow)
            if out.is_terminal
            else PlainProgress(out)
        )
        if progress is None:
            return dict(await application.executions.run(request, on_adopted=adopted))
        with progress:
            done = await application.executions.run(
                request, on_events=progress.update, on_adopted=adopted
            )
        return dict(done)

    doc = with_app(db, go, plugin)
    if as_json:
        print_json(doc)
    else:
        render.summary(out, doc)
        from flowledger.cli.control import report_waiting  # keeps `executions list` first

        report_waiting(doc, db, plugin)
    raise typer.Exit(exit_code(doc["runtimeStatus"]))


@app.command()
def start(
    workflow: Annotated[
        str, typer.Argument(metavar="FILE_OR_NAME", help="A definition file or a pushed name.")
    ],
    input: Annotated[str | None, typer.Option("--input", help="Input as JSON.")] = None,
    db: DbOption = None,
    correlation_id: Annotated[str | None, typer.Option("--correlation-id")] = None,
    plugin: PluginOption = None,
) -> None:
    """Enqueue an execution for the workers and print its id."""
    arguments = (
        build(lambda: json_object(parse_json(input, "--input"), "the input"))
        if input is not None
        else {}
    )
    request = StartExecution(
        workflow=workflow, input=arguments, correlation_id=correlation_id, created_by="cli:start"
    )
    doc = with_app(db, lambda application: application.executions.start(request), plugin)
    out.print(doc["id"], markup=False, highlight=False)


@app.command()
def worker(
    db: DbOption = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=1000, help="Executions run at once.")
    ] = 8,
    lease: Annotated[
        str | None,
        typer.Option(
            "--lease",
            help="Lease length (default $FLOWLEDGER_LEASE or 30s); a dead worker's "
            "work moves to others after it.",
        ),
    ] = None,
    plugin: PluginOption = None,
) -> None:
    """Run queued, due and orphaned executions until stopped (SIGTERM drains)."""
    lease_span = lease_length(lease)
    logging.getLogger().setLevel(_log_level(Settings.from_env(), "INFO"))
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its per-migration INFO is noise here

    async def go() -> None:
        application = App(db or default_db_url(), plugins=plugin or (), lease=lease_span)
        async with application:
            engine = application.engine
            options = WorkerOptions(concurrency=concurrency, lease=lease_span)
            runner = Worker(engine, options)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, runner.stop)
            logging.getLogger("flowledger.worker").info(
                "worker %s on %s, concurrency %d",
                engine.owner,
                engine.db_url,
                concurrency,
                extra=log_extra("start_worker"),
            )
            await runner.run()
            logging.getLogger("flowledger.worker").info(
                "worker stopped after finishing %d executions",
                runner.completed,
                extra=log_extra("stop_worker"),
            )

    call(go)


@app.command()
def validate(
    files: Annotated[list[str], typer.Argument(help="Definition files to check.")],
    plugin: PluginOption = None,
) -> None:
    """Check definitions without running them; report every problem at once."""
    application = make_app(None, plugin)  # validating opens no database
    bad = 0
    for file in files:
        try:
            workflow = application.workflows.validate(ValidateWorkflow(file=file))
        except DefinitionError as exc:
            bad += 1
            for problem in exc.problems:
                err.print(problem.format(), markup=False, highlight=False, soft_wrap=True)
            continue
        out.print(f"{file}: ok ({workflow.name}, {len(workflow.steps)} steps)")
    if bad:
        raise typer.Exit(EXIT_INVALID)


@executions_app.command("list")
def executions_list(
    status: Annotated[str | None, typer.Option("--status", help="Only this runtimeStatus.")] = None,
    workflow: Annotated[str | None, typer.Option("--workflow", help="Only this workflow.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 20,
    parent: Annotated[
        str | None, typer.Option("--parent", help="Only children of this execution.")
    ] = None,
    job: Annotated[str | None, typer.Option("--job", help="Only this job run's.")] = None,
    correlation_id: Annotated[
        str | None, typer.Option("--correlation-id", help="Only this correlation id.")
    ] = None,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="The next page: a listing's next cursor.")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List executions, newest first (--json prints the list of execution documents)."""
    request = build(
        lambda: ListExecutions(
            status=status,
            workflow=workflow,
            parent_id=parent,
            job_run_id=job,
            correlation_id=correlation_id,
            limit=limit,
            cursor=cursor,
        )
    )
    page = with_app(db, lambda application: application.executions.list(request))
    docs = [dict(doc) for doc in page.items]
    if as_json:
        print_json(docs)
        return
    render.execution_table(out, docs)
    if page.next_cursor is not None:
        out.print(f"more: --cursor {page.next_cursor}", markup=False, soft_wrap=True)


@executions_app.command("show")
def executions_show(
    execution: Annotated[str, typer.Argument(metavar="ID", help="Execution id (or a prefix).")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one execution with its steps."""

    async def go(application: App) -> dict[str, Any]:
        full_id = await execution_id(application, execution)
        return dict(await application.executions.get(GetExecution(id=full_id)))

    show(with_app(db, go), as_json, lambda doc: render.execution_detail(out, doc))


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Apply pending schema migrations (every command also does this on first use)."""
    applied = call(lambda: upgrade_database(db or default_db_url(), Settings.from_env()))
    if applied:
        out.print("applied migrations: " + ", ".join(applied), markup=False)
    else:
        out.print("the database schema is up to date", markup=False)


# The other command groups register themselves on the shared apps when imported.
from flowledger.cli import (  # noqa: E402
    artifacts,  # noqa: F401
    control,  # noqa: F401
    entities,  # noqa: F401
    jobs,  # noqa: F401
    serve,  # noqa: F401
    tokens,  # noqa: F401
    workflows,  # noqa: F401
)


def main() -> None:
    try:
        app()
    except Exception as exc:  # a bug, never bad input: still one line, not a traceback
        log = logging.getLogger("flowledger.cli")
        log.debug("internal error", exc_info=True, extra=log_extra("cli"))
        detail = str(exc).splitlines()[0] if str(exc) else ""
        sys.stderr.write(
            f"error: internal error ({type(exc).__name__}{': ' + detail if detail else ''}); "
            "this is a flowledger bug: please report it with the command you ran\n"
        )
        raise SystemExit(1) from None
