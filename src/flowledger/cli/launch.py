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
from typing import Any

import typer
import typer.main

from flowledger.logs import last_words, log_extra

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
    try:
        if argv and argv[0] in COMMANDS:
            root = only(argv[0])
        else:
            from flowledger.cli.app import app as root
        from flowledger.cli.common import plain_help

        plain_help(typer.main.get_command(root))(args=argv, prog_name="flowledger")
    except Exception as exc:  # a bug, never bad input: still one line, not a traceback
        log = logging.getLogger("flowledger.cli")
        log.debug("internal error", exc_info=True, extra=log_extra("cli"))
        detail = str(exc).splitlines()[0] if str(exc) else ""
        last_words(
            f"internal error ({type(exc).__name__}{': ' + detail if detail else ''}); "
            "this is a flowledger bug: please report it with the command you ran"
        )
        raise SystemExit(1) from None
