"""Build and run the ``flowledger`` command, loading only the invoked command's modules.

A cold start of ``flowledger run`` should not import the modules (and through them the
application services) of ``entities``, ``tokens`` or ``serve``, nor have Typer read the
signatures of forty commands to call one: ``launch`` imports the modules that register
the first word's command (:data:`COMMANDS`) and builds that command alone. Any other
first word (``--help``, a typo, none) builds the whole command, as :mod:`cli.app` does.
"""

from __future__ import annotations

import copy
import importlib
import logging
from typing import Any, NoReturn

import typer
import typer.main

from flowledger.logs import last_words, log_extra, writes_json

#: The modules (under ``flowledger.cli``) that register each top-level command, in the
#: order ``cli.app`` imports them (it is the order a group lists its commands in).
#: tests/cli/test_launch.py checks this against the whole command.
COMMANDS: dict[str, tuple[str, ...]] = {
    "run": ("running",),
    "start": ("running",),
    "worker": ("running",),
    "validate": ("running",),
    "db": ("running", "dbinfo"),
    "executions": ("artifacts", "control", "executions", "logs", "prune"),
    "entities": ("entities",),
    "jobs": ("jobs",),
    "serve": ("serve",),
    "steps": ("steps",),
    "tokens": ("tokens",),
    "workflows": ("triggers", "workflows"),
}


def only(name: str) -> typer.Typer:
    """The root command with just ``name`` registered (its modules imported)."""
    from flowledger.cli.common import app

    for module in COMMANDS[name]:
        importlib.import_module(f"flowledger.cli.{module}")
    chosen = copy.copy(app)  # the shared app keeps every command registered so far
    chosen.registered_commands = [
        command for command in app.registered_commands if command_name(command) == name
    ]
    chosen.registered_groups = [group for group in app.registered_groups if group.name == name]
    return chosen


def command_name(command: Any) -> str:
    """The name a registered command is invoked by (typer's rule: the function's name)."""
    return str(command.name or typer.main.get_command_name(command.callback.__name__))


def launch(argv: list[str]) -> None:
    """Run the command line ``argv`` (without the program name)."""
    command: Any = None
    try:
        if argv and argv[0] in COMMANDS:
            root = only(argv[0])
        else:
            from flowledger.cli.app import app as root
        from flowledger.cli.common import plain_help

        command = plain_help(typer.main.get_command(root))
        # Not standalone: a refused option comes back here, to be told as the logs are
        # (JSON when asked: the main callback set logging up before the subcommand's
        # options were parsed), where typer printed its box whatever was asked.
        code = command(args=argv, prog_name="flowledger", standalone_mode=False)
    except Exception as exc:
        if _refused_usage(exc):
            _tell_usage(exc, command)
        _internal_error(exc)
    raise SystemExit(code if isinstance(code, int) else 0)


def _refused_usage(exc: Exception) -> bool:
    """A refusal of the command line by click (an unknown option, a value of the wrong
    type), or an abort: duck-typed, as typer vendors its own click."""
    if type(exc).__name__ == "Abort":
        return True
    return hasattr(exc, "exit_code") and hasattr(exc, "format_message") and hasattr(exc, "show")


def _tell_usage(exc: Any, command: Any) -> NoReturn:
    if type(exc).__name__ == "Abort":
        last_words("aborted")
        raise SystemExit(1)
    _in_our_words(exc)
    if writes_json():
        where = getattr(getattr(exc, "ctx", None), "command_path", "flowledger")
        last_words(f"{where}: {exc.format_message()}")
    elif getattr(command, "rich_markup_mode", None) is not None:
        from typer import rich_utils

        rich_utils.rich_format_error(exc)
    else:
        exc.show()
    raise SystemExit(exc.exit_code)


def _in_our_words(exc: Any) -> None:
    """A value typer refused through pydantic ("Input should be a valid integer, unable
    to parse string as an integer") said as every other refusal is (``must be a whole
    number, not "abc"``: errors.field_message)."""
    from pydantic import ValidationError

    cause = exc.__cause__
    if isinstance(cause, ValidationError) and cause.errors() and hasattr(exc, "message"):
        from flowledger.errors import field_message

        exc.message = field_message(cause.errors()[0])


def _internal_error(exc: Exception) -> NoReturn:
    """A bug, never bad input: still one line, not a traceback."""
    log = logging.getLogger("flowledger.cli")
    log.debug("internal error", exc_info=exc, extra=log_extra("cli"))
    detail = str(exc).splitlines()[0] if str(exc) else ""
    last_words(
        f"internal error ({type(exc).__name__}{': ' + detail if detail else ''}); "
        "this is a flowledger bug: please report it with the command you ran"
    )
    raise SystemExit(1) from None
