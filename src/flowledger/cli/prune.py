"""`flowledger executions prune --older-than 30d [--status S] [--dry-run]`."""

from __future__ import annotations

from typing import Annotated

import typer

from flowledger.cli.common import DbOption, JsonOption, build, executions_app, existing, out, show
from flowledger.config import MIN_RETENTION
from flowledger.durations import spoken


@executions_app.command("prune")
def executions_prune(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="AGE",
            help="Delete executions that ended longer ago than this (30d, 12h; at least "
            f"{spoken(MIN_RETENTION)}).",
        ),
    ],
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            metavar="STATUS",
            help="Only this status (repeatable): Completed, CompletedWithNoActionTaken, "
            "Failed, Cancelled; default all four.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be deleted.")
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete finished executions with everything they own, a small batch at a time.

    What goes with each: its steps, events, signals, step logs and artifacts (files too).

    Never touches unfinished executions (queued, running, waiting for input or a timer),
    nor a parent while a child of it remains, nor the executions of an unfinished job run.
    """
    from flowledger.app.models import PruneExecutions

    request = build(
        lambda: PruneExecutions(older_than=older_than, statuses=status or [], dry_run=dry_run)
    )
    result = existing(db, lambda application: application.retention.prune(request))

    def render(done: dict[str, object]) -> None:
        before = str(done["before"]).replace("T", " ")
        if done["dryRun"]:
            out.print(f"would delete {done['executions']} executions that ended before {before}")
        else:
            out.print(
                f"deleted {done['executions']} executions that ended before {before} "
                f"({done['batches']} batches, {done['artifactFolders']} artifact folders)",
                markup=False,
            )

    show(dict(result), as_json, render)
