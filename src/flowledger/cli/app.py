"""The ``flowledger`` command (SPEC §5)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Annotated, Any

import typer

from flowledger import __version__
from flowledger.cli import render
from flowledger.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    DbOption,
    JsonOption,
    PluginOption,
    app,
    call,
    db_app,
    err,
    executions_app,
    exit_code,
    fail,
    lease_length,
    make_engine,
    out,
    print_json,
)
from flowledger.cli.progress import LiveProgress, PlainProgress
from flowledger.config import Settings
from flowledger.errors import DefinitionError, InputError
from flowledger.runtime.engine import Engine, default_db_url, load_input_file, parse_input_json
from flowledger.runtime.status import ExecutionStatus
from flowledger.runtime.worker import Worker, WorkerOptions
from flowledger.storage import ExecutionQuery, open_store

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

    async def go() -> dict[str, Any]:
        arguments: Any = {}
        if input is not None:
            arguments = parse_input_json(input)
        elif input_file is not None:
            arguments = load_input_file(input_file)
        if not isinstance(arguments, dict):
            raise InputError("the input must be a JSON object")
        async with make_engine(db, plugin) as engine:
            workflow = engine.load(file)
            progress = (
                None
                if as_json
                else LiveProgress(out, workflow)
                if out.is_terminal
                else PlainProgress(out)
            )
            # Finish what an earlier, stopped `run` of this workflow left behind first.
            for left in await engine.adopt_abandoned(workflow.name, RUN_CREATOR):
                err.print(
                    f"finishing execution {left} of {workflow.name}, left unfinished by a "
                    "stopped run",
                    markup=False,
                )
                done = await engine.drive(left, document=False)
                err.print(f"execution {left}: {done['runtimeStatus']}", markup=False)
            execution_id = await engine.start(
                workflow,
                arguments,
                correlation_id=correlation_id,
                created_by=RUN_CREATOR,
                hold=True,
            )
            if progress is None:
                return await engine.drive(execution_id)
            engine.on_events(progress.update)
            with progress:
                return await engine.drive(execution_id)

    doc = call(go)
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

    async def go() -> str:
        arguments = parse_input_json(input) if input is not None else {}
        if not isinstance(arguments, dict):
            raise InputError("the input must be a JSON object")
        async with make_engine(db, plugin) as engine:
            compiled = await engine.find_workflow(workflow)
            execution_id = await engine.start(
                compiled, arguments, correlation_id=correlation_id, created_by="cli:start"
            )
            await engine.store.notify_work()
            return execution_id

    out.print(call(go), markup=False, highlight=False)


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
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its per-migration INFO is noise here

    async def go() -> None:
        async with Engine(db or default_db_url(), plugins=plugin or (), lease=lease_span) as engine:
            options = WorkerOptions(concurrency=concurrency, lease=lease_span)
            runner = Worker(engine, options)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, runner.stop)
            logging.getLogger("flowledger.worker").info(
                "worker %s on %s, concurrency %d", engine.owner, engine.db_url, concurrency
            )
            await runner.run()
            logging.getLogger("flowledger.worker").info(
                "worker stopped after finishing %d executions", runner.completed
            )

    call(go)


@app.command()
def validate(
    files: Annotated[list[str], typer.Argument(help="Definition files to check.")],
    plugin: PluginOption = None,
) -> None:
    """Check definitions without running them; report every problem at once."""
    engine = make_engine(None, plugin)
    bad = 0
    for file in files:
        try:
            workflow = engine.load(file)
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
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List executions, newest first."""
    if status is not None and status not in {s.value for s in ExecutionStatus}:
        known = ", ".join(s.value for s in ExecutionStatus)
        fail(f"unknown status {status!r}; use one of {known}", EXIT_INVALID)

    async def go() -> list[dict[str, Any]]:
        async with make_engine(db) as engine:
            query = ExecutionQuery(
                status=status, workflow=workflow, parent_id=parent, job_run_id=job, limit=limit
            )
            return await engine.list_executions(query)

    docs = call(go)
    if as_json:
        print_json(docs)
    else:
        render.execution_table(out, docs)


@executions_app.command("show")
def executions_show(
    execution_id: Annotated[str, typer.Argument(metavar="ID", help="Execution id (or a prefix).")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one execution with its steps."""

    async def go() -> dict[str, Any]:
        async with make_engine(db) as engine:
            return await engine.get_execution(await engine.resolve_id(execution_id))

    doc = call(go)
    if as_json:
        print_json(doc)
    else:
        render.execution_detail(out, doc)


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Apply pending schema migrations (every command also does this on first use)."""

    async def go() -> list[str]:
        store = open_store(db or default_db_url(), Settings.from_env())
        try:
            return await store.upgrade()
        finally:
            await store.close()

    applied = call(go)
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
    workflows,  # noqa: F401
)


def main() -> None:
    app()
