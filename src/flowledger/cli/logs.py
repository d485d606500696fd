"""`flowledger executions logs ID [--step S] [--follow]`: what step handlers logged."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flowledger.cli.clock import stamp
from flowledger.cli.common import (
    DbOption,
    JsonOption,
    command,
    execution_id,
    executions_app,
    existing,
    out,
)
from flowledger.cli.progress import iteration_suffix

if TYPE_CHECKING:
    from flowledger.app import App


@executions_app.command("logs")
def executions_logs(
    execution: Annotated[str, typer.Argument(metavar="ID", help="Execution id (or a prefix).")],
    step: Annotated[
        list[str] | None,
        typer.Option("--step", metavar="STEP", help="Only this step's lines (repeatable)."),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep printing new lines until the execution ends."),
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print what the execution's step handlers logged through ctx.logger, oldest first.

    Lines at or above FLOWLEDGER_STEP_LOG_LEVEL (default INFO) are kept, up to
    FLOWLEDGER_STEP_LOG_LIMIT (default 64KiB) per step attempt, secrets redacted.
    --json prints one JSON object per line.
    """
    from flowledger.app.models import FollowStepLogs, ListStepLogs

    async def go(application: App) -> int:
        full_id = await execution_id(application, execution)
        printed = 0
        if follow:
            request = FollowStepLogs(id=full_id, steps=step or [])
            async for line in application.step_logs.follow(request):
                _print(line, as_json)
                printed += 1
            return printed
        cursor = None
        while True:
            page = await application.step_logs.list(
                ListStepLogs(id=full_id, steps=step or [], cursor=cursor)
            )
            for line in page["items"]:
                _print(line, as_json)
                printed += 1
            cursor = page["nextCursor"]
            if cursor is None:
                return printed

    if not existing(db, go) and not as_json:
        which = f" of step {', '.join(step)}" if step else ""
        out.print(
            f"no step logs{which} (handlers log through ctx.logger; lines at or above "
            "FLOWLEDGER_STEP_LOG_LEVEL, default INFO, are kept)",
            markup=False,
        )


def _print(line: Any, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    at = stamp(line["at"])
    # A loop body's line says its iteration, as the events do (``send[each 3]#1``).
    where = iteration_suffix(line.get("loop"))
    head = f"{at} {line['stepId']}{where}#{line['attempt']} {line['level']:<7} "
    first, *rest = line["message"].splitlines() or [""]
    out.print(head + first, markup=False, highlight=False, soft_wrap=True)
    for more in rest:  # a traceback: indented under its line
        out.print(" " * len(head) + more, markup=False, highlight=False, soft_wrap=True)


def logs_line(execution_id: str, counts: dict[str, int], db: str | None) -> str | None:
    """The line `executions show` prints about step logs (``counts`` from
    ``application.step_logs.counts(id)``), with the command that prints them on the
    database ``db``; None when the execution has none."""
    total = sum(counts.values())
    if not total:
        return None
    order = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
    levels = ", ".join(f"{counts[level]} {level}" for level in order if counts.get(level))
    return (
        f"step logs: {total} lines ({levels}); {command('executions', 'logs', execution_id, db=db)}"
    )
