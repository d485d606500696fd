"""What every ``flowledger`` command shares: the Typer apps, consoles, options and error exits."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import os
import re
import shlex
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn, TypeVar

import typer
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from flowledger import __version__
from flowledger.cli.terminal import SafeConsole
from flowledger.config import (
    LOG_FORMATS,
    ConfigError,
    Settings,
    lone_log_format,
    parse_lease,
)
from flowledger.errors import (
    DatabaseUrlError,
    DefinitionError,
    FlowledgerError,
    InputError,
    InvalidInputError,
    NotFoundError,
    PluginError,
    StorageError,
    format_path,
)
from flowledger.heap import end_start_up
from flowledger.logs import configure_logging, last_words, log_extra, writes_json
from flowledger.runtime.status import ExecutionStatus

if TYPE_CHECKING:  # the application (and the engine under it) loads when a command opens it
    from flowledger.app import App

T = TypeVar("T")
R = TypeVar("R")

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_AWAITING = 0, 1, 2, 3
#: A control verb's request is recorded, and a live process elsewhere that holds the
#: execution (or a child of it) acts on it: not a failure, and not done yet.
EXIT_PENDING = 4

app = typer.Typer(
    name="flowledger",
    help="A durable, declarative workflow engine.",
    no_args_is_help=True,
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
executions_app = typer.Typer(help="Inspect and control executions.", no_args_is_help=True)
app.add_typer(executions_app, name="executions")
db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
workflows_app = typer.Typer(
    help="Push definitions so their triggers are active.", no_args_is_help=True
)
app.add_typer(workflows_app, name="workflows")
entities_app = typer.Typer(help="The built-in entity store.", no_args_is_help=True)
app.add_typer(entities_app, name="entities")
entity_types_app = typer.Typer(help="Entity types and their JSON Schemas.", no_args_is_help=True)
entities_app.add_typer(entity_types_app, name="types")
jobs_app = typer.Typer(help="Job runs: several workflows run in order.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")

# Piped output is read by tools and people with wide screens: do not squeeze it into 80 columns.
# markup=False: user text (ids, step ids, messages, `[link=…]`) is never read as Rich markup;
# emoji=False: nor as emoji codes (`wf.yaml:100:3` printed as `wf.yaml💯3`, `ten:fire:s` as
# `ten🔥s`); styles are given as Text objects only. This is the one place that escapes everything
# (and SafeConsole shows the control characters in data instead of sending them).
out = SafeConsole(
    markup=False, emoji=False, highlight=False, width=None if sys.stdout.isatty() else 200
)
err = SafeConsole(
    stderr=True,
    markup=False,
    emoji=False,
    highlight=False,
    width=None if sys.stderr.isatty() else 200,
)


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", help="Print flowledger's version and exit.")
    ] = False,
) -> None:
    """A durable, declarative workflow engine."""
    if version:
        out.print(f"flowledger {__version__}")
        raise typer.Exit(EXIT_OK)
    # Logs go to stderr; stdout stays the command's output (--json stays parseable). Set
    # up before anything can fail, so even a bad setting is told in the format asked.
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        configure_logging(_asked_log_format(lone_log_format(os.environ)), logging.WARNING)
        fail(str(exc), EXIT_INVALID)
    configure_logging(_asked_log_format(settings.log_format), log_level(settings))


def _asked_log_format(from_env: str) -> Literal["text", "json"]:
    """``--log-format`` of the command line (serve, worker) when it names a format, else
    the environment's: read here, before the command parses its options, so that what
    it refuses first (``--concurrency 0``) is told in the format asked too."""
    args = sys.argv[1:]
    asked = from_env
    for index, arg in enumerate(args):
        if arg == "--log-format" and index + 1 < len(args):
            asked = args[index + 1]
        elif arg.startswith("--log-format="):
            asked = arg.partition("=")[2]
    return (
        "json" if asked == "json" or (asked not in LOG_FORMATS and from_env == "json") else "text"
    )


def log_level(settings: Settings, default: str = "WARNING") -> str:
    return settings.log_level or default


LogFormatOption = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        metavar="text|json",
        help="text or json: one JSON object per log line (default $FLOWLEDGER_LOG_FORMAT or text).",
    ),
]


def service_logging(log_format: str | None, settings: Settings) -> str:
    """The logs of a long-running command (serve, worker): ``--log-format`` checked (the
    main callback already follows one it knows), INFO unless ``$FLOWLEDGER_LOG_LEVEL``
    says otherwise, without alembic's line per migration. Returns the level."""
    if log_format is not None and log_format not in LOG_FORMATS:
        fail(f"--log-format must be text or json, not {log_format!r}", EXIT_INVALID)
    level = log_level(settings, "INFO")
    logging.getLogger().setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return level


DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: $FLOWLEDGER_DB or sqlite:///flowledger.db)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only.")]
CursorOption = Annotated[
    str | None, typer.Option("--cursor", help="The next page: a listing's next cursor.")
]
ReasonOption = Annotated[str | None, typer.Option("--reason", help="Recorded with the cancel.")]
PluginOption = Annotated[
    list[str] | None,
    typer.Option("--plugin", help="Import a Python module of custom step types (repeatable)."),
]


InputOption = Annotated[str | None, typer.Option("--input", help="Input as JSON.")]
InputFileOption = Annotated[
    str | None, typer.Option("--input-file", help="Input from a JSON file (not with --input).")
]


def read_input(given: str | None, file: str | None) -> dict[str, Any]:
    """The input object of ``--input`` or ``--input-file`` (of every command that takes
    them: one rule), ``{}`` without either; exit 2 naming what is wrong."""
    if given is not None and file is not None:
        fail("give --input or --input-file, not both", EXIT_INVALID)
    from flowledger.app import json_object, parse_json, read_json_file

    if given is not None:
        return build(lambda: json_object(parse_json(given, "--input"), "the input"))
    if file is not None:
        return build(lambda: json_object(read_json_file(file), "the input"))
    return {}


def same_db(db: str | None) -> list[str]:
    """What a command the CLI prints for the user to paste adds so that it acts on the
    database this one used: ``--db URL`` when ``--db`` named one other than the default
    (``$FLOWLEDGER_DB``, else the file in the current folder), which the pasted command
    would open instead (tour 24: "no database at ./flowledger.db"). A password in it is
    shown as ``***``: printed output lands in logs and terminals' scrollback."""
    if db is None:
        return []
    from flowledger.runtime.engine import default_db_url

    if db == default_db_url():
        return []
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(db)
    except Exception:  # an unparsable URL was refused before anything was printed
        return ["--db", db]
    return ["--db", db if parsed.password is None else parsed.render_as_string()]


def command(*words: str, db: str | None = None) -> str:
    """A ``flowledger`` command line to paste, each word quoted for the shell, on the
    database ``db`` names (:func:`same_db`): every hint the CLI prints is built here."""
    return shlex.join(["flowledger", *words, *same_db(db)])


def within(value: int, low: int, high: int, option: str) -> int:
    """An integer option in its range, or exit 2 saying so (in our words, not typer's)."""
    if not low <= value <= high:
        fail(f"{option} must be between {low} and {high}, not {value}", EXIT_INVALID)
    return value


def lease_length(text: str | None) -> timedelta:
    """The lease length: --lease, else $FLOWLEDGER_LEASE, else 30s."""
    try:
        return parse_lease(text) if text else Settings.from_env().lease
    except ConfigError as exc:
        fail(str(exc), EXIT_INVALID)


def make_app(db: str | None, plugins: list[str] | None = None, *, create: bool = True) -> App:
    """The application on --db (else $FLOWLEDGER_DB), with the --plugin modules loaded;
    ``create=False`` for commands that only read or act on what exists (no new file)."""
    try:
        limits = Settings.from_env().limits
    except ConfigError as exc:
        fail(str(exc), EXIT_INVALID)
    from flowledger.app import App
    from flowledger.runtime.engine import default_db_url

    try:
        return App(
            db or default_db_url(),
            plugins=plugins or (),
            lease=lease_length(None),
            limits=limits,
            create=create,
        )
    except PluginError as exc:  # a --plugin that does not load: the user's to fix
        fail(str(exc), EXIT_INVALID)


def traced(application: App) -> Callable[[], None] | None:
    """With FLOWLEDGER_OTEL=1, spans of what ``application`` runs in this process (as
    ``serve`` writes them); returns what flushes those still batched, to call at the end.
    Without the OpenTelemetry SDK: exit 2 saying what to install."""
    if not application.engine.settings.otel:
        return None
    from flowledger.api.tracing import TracingUnavailable, stop_spans, trace_engine

    try:
        processor = trace_engine(application.engine)
        return lambda: stop_spans(processor)
    except TracingUnavailable as exc:
        fail(str(exc), EXIT_INVALID)


@contextlib.asynccontextmanager
async def opened_waiting(application: App) -> AsyncIterator[App]:
    """``async with application`` for the commands that serve until stopped (worker,
    serve): a database server not reachable yet is waited for, each try said in the log
    (a worker started with its database, at boot or in a failover, exited at once)."""

    def waiting(exc: StorageError, pause: float) -> None:
        logging.getLogger("flowledger.cli").error(
            "cannot reach the database yet (%s); trying again in %.0fs",
            exc,
            pause,
            extra=log_extra("open_database"),
        )

    await application.open_waiting(waiting)
    try:
        yield application
    finally:
        await application.close()


def with_app(
    db: str | None,
    fn: Callable[[App], Awaitable[T]],
    plugins: list[str] | None = None,
    *,
    create: bool = True,
    interrupted: Callable[[], str] | None = None,
    before_open: Callable[[App], None] | None = None,
    runs: bool = False,
) -> T:
    """The one glue of a command: open the application, run ``fn`` on it, close it, and
    turn flowledger's errors into a message and an exit code (see :func:`call`).
    ``create=False``: a missing SQLite file exits 2 instead of being created.
    ``before_open`` runs before the database is opened (or created): a check of the
    command's own files that fails leaves no database behind.
    ``runs``: the command carries executions on here, traced like a worker's
    (:func:`traced`) and with its loop watched (a blocked loop is reported); the rest
    only read or record, and never need the tracing SDK."""

    async def go() -> T:
        application = make_app(db, plugins, create=create)
        if before_open is not None:
            before_open(application)
        flush = traced(application) if runs else None
        try:
            async with application:
                end_start_up()  # opened: the command's own work runs with the collector on
                if not runs:
                    return await fn(application)
                from flowledger.worker.watchdog import watch_loop

                with watch_loop(application.engine.settings.loop_stall.total_seconds()):
                    return await fn(application)
        finally:
            if flush is not None:
                flush()

    return call(go, interrupted, db)


def existing(
    db: str | None,
    fn: Callable[[App], Awaitable[T]],
    plugins: list[str] | None = None,
    *,
    interrupted: Callable[[], str] | None = None,
    runs: bool = False,
) -> T:
    """:func:`with_app` for commands that read or act on stored things: never creates."""
    return with_app(db, fn, plugins, create=False, interrupted=interrupted, runs=runs)


def shown_url(url: str) -> str:
    """A database URL fit to print: a SQLite file as its absolute path, a password hidden."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # an unparsable URL is refused later, with its own message
        return url
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return f"sqlite:///{Path(parsed.database or '').expanduser().resolve()}"
    return parsed.render_as_string(hide_password=True)


def build(request: Callable[[], R]) -> R:
    """Build a request before anything is opened: a bad option exits 2 with its field."""
    try:
        return request()
    except InputError as exc:
        fail(as_option(exc), EXIT_INVALID)


def as_option(exc: InputError) -> str:
    """The message of a refused request, its field named as the option the command was
    given (``--older-than``, where the application names the JSON field ``olderThan``)."""
    if not isinstance(exc, InvalidInputError) or not exc.field_path:
        return str(exc)
    field = exc.field_path[0]
    if not isinstance(field, str):
        return str(exc)
    flag = "--" + re.sub(r"(?<!^)(?=[A-Z])", "-", field).lower().replace("_", "-")
    if not any(arg == flag or arg.startswith(flag + "=") for arg in sys.argv[1:]):
        return str(exc)
    after = exc.field_path[1:]
    # The nth value of a repeated option: the message quotes the value, [n] adds nothing.
    rest = "" if len(after) == 1 and isinstance(after[0], int) else format_path(after)
    return f"{flag}{f' {rest}' if rest else ''}: {exc.message}"


async def execution_id(application: App, prefix: str) -> str:
    """The full id of the execution a command names by a prefix of its id."""
    from flowledger.app import ResolveId

    return await application.executions.resolve_id(ResolveId(prefix=prefix))


async def job_run_id(application: App, prefix: str) -> str:
    """The full id of the job run a command names by a prefix of its id."""
    from flowledger.app import ResolveId

    return await application.job_runs.resolve_id(ResolveId(prefix=prefix))


def show(value: T, as_json: bool, render: Callable[[T], None]) -> None:
    """Print a result: as JSON with --json, else as ``render`` lays it out."""
    if as_json:
        print_json(value)
    else:
        render(value)


def fail(message: str, code: int) -> NoReturn:
    say_error(message)
    raise typer.Exit(code)


def say_error(message: str) -> None:
    """An error said as :func:`fail` says it, for a command that goes on after it."""
    if writes_json():  # serve/worker --log-format json: the last line is JSON too
        last_words(message)
    else:
        err.print(Text.assemble(("error:", "red"), f" {message}"), soft_wrap=True)


def say_problems(exc: DefinitionError) -> None:
    """Every problem of a refused definition, one line each, located."""
    for problem in exc.problems:
        err.print(problem.format(), highlight=False, soft_wrap=True)


def call(
    fn: Callable[[], Coroutine[Any, Any, T]],
    interrupted: Callable[[], str] | None = None,
    db: str | None = None,
) -> T:
    """Run a coroutine; turn every flowledger error into a message and an exit code.
    On Ctrl-C print ``interrupted()`` (what was saved, what goes on) and exit 130.
    ``db``: the command's --db, which a command it suggests repeats (:func:`command`)."""
    try:
        return asyncio.run(fn())
    except DefinitionError as exc:
        say_problems(exc)
        raise typer.Exit(EXIT_INVALID) from None
    except InputError as exc:
        fail(as_option(exc), EXIT_INVALID)
    except DatabaseUrlError as exc:  # a bad --db or a missing file: refused input
        fail(str(exc), EXIT_INVALID)
    except NotFoundError as exc:
        fail(str(exc), EXIT_FAILED)
    except FlowledgerError as exc:
        fail(str(exc), EXIT_FAILED)
    except SQLAlchemyError as exc:  # a database this flowledger cannot use as it is
        from flowledger.app import database_locked, driver_message, schema_mismatch, trouble_detail

        detail = driver_message(exc)
        if database_locked(exc):
            fail(f"{trouble_detail(exc)}; end it and try again", EXIT_FAILED)
        if schema_mismatch(exc):
            fail(
                f"the database refused a query ({detail}); if another flowledger version "
                f"created it, run `{command('db', 'upgrade', db=db)}` with the newest one",
                EXIT_FAILED,
            )
        fail(f"the database refused a query ({detail})", EXIT_FAILED)
    except KeyboardInterrupt:
        err.print(
            interrupted()
            if interrupted is not None
            else "interrupted; everything done so far is saved",
            soft_wrap=True,
        )
        raise typer.Exit(130) from None


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def exit_code(status: str) -> int:
    if status in (ExecutionStatus.COMPLETED, ExecutionStatus.COMPLETED_NO_ACTION):
        return EXIT_OK
    if status == ExecutionStatus.AWAITING_USER_INPUT:
        return EXIT_AWAITING
    return EXIT_FAILED


#: What an option's value is, as help shows it (an option not listed: its name in capitals).
VALUE_NAMES = {
    "--input": "JSON",
    "--data": "JSON",
    "--filter": "JSON",
    "--input-file": "PATH",
    "--schema": "FILE",
    "--download": "DIR",
    "--db": "URL",
    "--plugin": "MODULE_OR_FILE",
    "--lease": "DURATION",
    "--since": "TIME",
    "--until": "TIME",
    "--limit": "N",
    "--offset": "N",
    "--concurrency": "N",
    "--after": "SEQ",
    "--port": "PORT",
    "--host": "HOST",
    "--reason": "TEXT",
    "--from": "STEP_ID",
    "--correlation-id": "ID",
    "--parent": "ID",
    "--job": "ID",
    "--created-by": "WHO",
}


def plain_help(command: Any) -> Any:
    """Make ``--help`` show value names (``--db URL``, ``FILE...``), never Python type
    names: typer releases differ (0.29 prints ``<str>``, ``<bool>``, ``<list[str]>`` and
    ``{FILE...}``; older ones click's ``TEXT``), so every hook any of them calls for a
    parameter's type or usage is given our label, on every command. Duck-typed: typer
    0.29 vendors its own click, older releases use click itself."""
    for param in command.params:
        _label(param, _value_name(param))
    make_help_option = command.get_help_option

    def help_option(ctx: Any) -> Any:
        option = make_help_option(ctx)
        if option is not None:
            _label(option, None)
        return option

    vars(command)["get_help_option"] = help_option
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)
    return command


def _label(param: Any, label: str | None) -> None:
    """Every hook a typer release may ask for the parameter's type answers ``label``;
    an argument shows it in the usage line only (its name column already says it)."""
    argument = param.param_type_name == "argument"
    shown = None if argument else label
    vars(param)["make_metavar"] = lambda *_a, **_k: label or ""
    vars(param)["display_type"] = lambda *_a, **_k: shown
    vars(param)["display_type_rich"] = lambda *_a, **_k: shown
    if getattr(param, "default", None) is None:
        param.show_default = False  # older releases print "[default: None]"
    if argument:
        vars(param)["get_usage_pieces"] = lambda *_a, **_k: [label]
        if hasattr(param, "type"):  # older releases print its type's name ("TEXT")
            param.type = copy.copy(param.type)
            param.type.name = str(label)


def _value_name(param: Any) -> str | None:
    if param.param_type_name == "option" and (
        getattr(param, "is_flag", False) or getattr(param, "count", False)
    ):
        return None
    if param.param_type_name == "argument":
        name = param.metavar or (param.name or "value").upper()
        many = param.nargs != 1 and not name.endswith("...")
        name = f"{name}..." if many else name
        return str(name) if param.required else f"[{name}]"
    descriptor = getattr(param, "type_descriptor", None)
    choices = getattr(getattr(param, "type", None), "choices", None) or (
        descriptor.choices if descriptor is not None and descriptor.is_choice else None
    )
    if choices:
        return "|".join(str(getattr(choice, "value", choice)) for choice in choices)
    long = max(param.opts, key=len)
    return str(param.metavar or VALUE_NAMES.get(long) or long.lstrip("-").upper())
