"""The ``flowledger`` command (SPEC §5)."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from flowledger import __version__
from flowledger.cli import render
from flowledger.cli.progress import LiveProgress, PlainProgress
from flowledger.config import ConfigError, Settings, parse_lease
from flowledger.errors import (
    DefinitionError,
    FlowledgerError,
    InputError,
    NotFoundError,
)
from flowledger.runtime.engine import Engine, default_db_url, load_input_file, parse_input_json
from flowledger.runtime.status import ExecutionStatus
from flowledger.runtime.worker import Worker, WorkerOptions
from flowledger.storage import ExecutionQuery, open_store

T = TypeVar("T")

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_AWAITING = 0, 1, 2, 3
#: createdBy of executions that `flowledger run` starts (and finishes again after a crash).
RUN_CREATOR = "cli:run"

app = typer.Typer(
    name="flowledger",
    help="A durable, declarative workflow engine.",
    no_args_is_help=True,
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
executions_app = typer.Typer(help="Inspect executions.", no_args_is_help=True)
app.add_typer(executions_app, name="executions")
db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

# Piped output is read by tools and people with wide screens: do not squeeze it into 80 columns.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: $FLOWLEDGER_DB or sqlite:///flowledger.db)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only.")]
PluginOption = Annotated[
    list[str] | None,
    typer.Option("--plugin", help="Import a Python module of custom step types (repeatable)."),
]


def _lease(text: str | None) -> timedelta:
    """The lease length: --lease, else $FLOWLEDGER_LEASE, else 30s."""
    try:
        return parse_lease(text) if text else Settings.from_env().lease
    except ConfigError as exc:
        _fail(str(exc), EXIT_INVALID)


def _engine(db: str | None, plugins: list[str] | None = None) -> Engine:
    return Engine(db or default_db_url(), plugins=plugins or (), lease=_lease(None))


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _call(fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine; turn every flowledger error into a message and an exit code."""
    try:
        return asyncio.run(fn())
    except DefinitionError as exc:
        for problem in exc.problems:
            err.print(problem.format(), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INVALID) from None
    except InputError as exc:
        _fail(str(exc), EXIT_INVALID)
    except NotFoundError as exc:
        _fail(str(exc), EXIT_FAILED)
    except FlowledgerError as exc:
        _fail(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        err.print(
            "interrupted; the execution is saved: the next `flowledger run` of this workflow "
            "(or any `flowledger worker`) finishes it"
        )
        raise typer.Exit(130) from None


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
        _fail("give --input or --input-file, not both", EXIT_INVALID)

    async def go() -> dict[str, Any]:
        arguments: Any = {}
        if input is not None:
            arguments = parse_input_json(input)
        elif input_file is not None:
            arguments = load_input_file(input_file)
        if not isinstance(arguments, dict):
            raise InputError("the input must be a JSON object")
        async with _engine(db, plugin) as engine:
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

    doc = _call(go)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        render.summary(out, doc)
    raise typer.Exit(_exit_code(doc["runtimeStatus"]))


def _exit_code(status: str) -> int:
    if status in (ExecutionStatus.COMPLETED, ExecutionStatus.COMPLETED_NO_ACTION):
        return EXIT_OK
    if status == ExecutionStatus.AWAITING_USER_INPUT:
        return EXIT_AWAITING
    return EXIT_FAILED


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
        async with _engine(db, plugin) as engine:
            compiled = await engine.find_workflow(workflow)
            execution_id = await engine.start(
                compiled, arguments, correlation_id=correlation_id, created_by="cli:start"
            )
            await engine.store.notify_work()
            return execution_id

    out.print(_call(go), markup=False, highlight=False)


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
    lease_length = _lease(lease)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its per-migration INFO is noise here

    async def go() -> None:
        async with Engine(
            db or default_db_url(), plugins=plugin or (), lease=lease_length
        ) as engine:
            options = WorkerOptions(concurrency=concurrency, lease=lease_length)
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

    _call(go)


@app.command()
def validate(
    files: Annotated[list[str], typer.Argument(help="Definition files to check.")],
    plugin: PluginOption = None,
) -> None:
    """Check definitions without running them; report every problem at once."""
    engine = _engine(None, plugin)
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
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List executions, newest first."""
    if status is not None and status not in {s.value for s in ExecutionStatus}:
        known = ", ".join(s.value for s in ExecutionStatus)
        _fail(f"unknown status {status!r}; use one of {known}", EXIT_INVALID)

    async def go() -> list[dict[str, Any]]:
        async with _engine(db) as engine:
            query = ExecutionQuery(status=status, workflow=workflow, limit=limit)
            return await engine.list_executions(query)

    docs = _call(go)
    if as_json:
        sys.stdout.write(json.dumps(docs, indent=2) + "\n")
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
        async with _engine(db) as engine:
            return await engine.get_execution(await engine.resolve_id(execution_id))

    doc = _call(go)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        render.execution_detail(out, doc)


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Apply pending schema migrations (every command also does this on first use)."""

    async def go() -> list[str]:
        store = open_store(db or default_db_url())
        try:
            return await store.upgrade()
        finally:
            await store.close()

    applied = _call(go)
    if applied:
        out.print("applied migrations: " + ", ".join(applied), markup=False)
    else:
        out.print("the database schema is up to date", markup=False)


def main() -> None:
    app()
