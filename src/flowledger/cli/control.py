"""``flowledger executions input|cancel|retry|rerun``: act on executions from outside.

Each records what was asked (a signal, new attempts, a new execution), then carries
the execution on in this process like ``run`` does — unless a worker holds it, in
which case the worker goes on and this command reports what it sees.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any, Literal

import typer

from flowledger.cli import render
from flowledger.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    DbOption,
    JsonOption,
    PluginOption,
    ReasonOption,
    call,
    executions_app,
    exit_code,
    fail,
    make_engine,
    out,
    print_json,
)
from flowledger.runtime.engine import Engine
from flowledger.runtime.status import ExecutionStatus

IdArgument = Annotated[str, typer.Argument(metavar="ID", help="Execution id (or a prefix).")]
DetachOption = Annotated[
    bool, typer.Option("--detach", help="Only record it; leave the running to workers.")
]


def _who() -> str:
    return f"cli:{os.environ.get('USER') or os.environ.get('USERNAME') or 'unknown'}"


def _finish(
    doc: dict[str, Any],
    as_json: bool,
    db: str | None,
    plugins: list[str] | None,
    detached: bool = False,
) -> None:
    if detached:  # only recorded: what it ends as is for whoever runs it to decide
        if as_json:
            print_json(doc)
        else:
            out.print(
                f"recorded; execution {doc['id']} is {doc['runtimeStatus']} and a worker "
                "carries it on",
                markup=False,
            )
        raise typer.Exit(EXIT_OK)
    if as_json:
        print_json(doc)
    else:
        render.summary(out, doc)
        report_waiting(doc, db, plugins)
    raise typer.Exit(exit_code(doc["runtimeStatus"]))


def report_waiting(doc: dict[str, Any], db: str | None, plugins: list[str] | None) -> None:
    """After a run that stopped for people: who must answer what, and how."""
    if doc["runtimeStatus"] != ExecutionStatus.AWAITING_USER_INPUT:
        return

    async def go() -> list[dict[str, Any]]:
        async with make_engine(db, plugins) as engine:
            return await engine.pending_inputs(doc["id"])

    render.pending_inputs(out, call(go))


async def _carry_on(engine: Engine, execution_id: str, detach: bool) -> dict[str, Any]:
    if detach:
        return await engine.get_execution(execution_id)
    return await engine.settle(execution_id)


@executions_app.command("input")
def executions_input(
    execution_id: IdArgument,
    step: Annotated[str, typer.Argument(metavar="STEP_ID", help="The waiting step's id.")],
    data: Annotated[str, typer.Option("--data", help="The input, as JSON.")],
    db: DbOption = None,
    as_json: JsonOption = False,
    plugin: PluginOption = None,
    detach: DetachOption = False,
) -> None:
    """Submit the data a waiting sys.wait_for_input step asks for."""
    try:
        value = json.loads(data)
    except json.JSONDecodeError as exc:
        fail(f"--data is not valid JSON (column {exc.colno}): {exc.msg}", EXIT_INVALID)

    async def go() -> dict[str, Any]:
        async with make_engine(db, plugin) as engine:
            full_id = await engine.resolve_id(execution_id)
            await engine.submit_input(full_id, step, value, submitted_by=_who())
            return await _carry_on(engine, full_id, detach)

    _finish(call(go), as_json, db, plugin, detach)


@executions_app.command("cancel")
def executions_cancel(
    execution_id: IdArgument,
    reason: ReasonOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    plugin: PluginOption = None,
) -> None:
    """Cancel an execution: running steps are stopped, children are cancelled too."""

    async def go() -> dict[str, Any]:
        async with make_engine(db, plugin) as engine:
            full_id = await engine.resolve_id(execution_id)
            await engine.cancel(
                full_id, by=_who(), reason=reason or "cancelled from the command line"
            )
            return await engine.settle(full_id)

    doc = call(go)
    if as_json:
        print_json(doc)
    else:
        render.summary(out, doc)
    if doc["runtimeStatus"] != ExecutionStatus.CANCELLED:
        fail(
            f"the cancel is recorded, but execution {doc['id']} is still "
            f"{doc['runtimeStatus']}; the process running it acts on it at its next step",
            1,
        )
    raise typer.Exit(EXIT_OK)


@executions_app.command("retry")
def executions_retry(
    execution_id: IdArgument,
    db: DbOption = None,
    as_json: JsonOption = False,
    plugin: PluginOption = None,
    detach: DetachOption = False,
) -> None:
    """Re-run the failed steps of a failed execution in place (attempt + 1)."""

    async def go() -> dict[str, Any]:
        async with make_engine(db, plugin) as engine:
            full_id = await engine.resolve_id(execution_id)
            steps = await engine.retry(full_id, by=_who())
            if not as_json:
                out.print(f"retrying {', '.join(steps) or 'the execution'}", markup=False)
            return await _carry_on(engine, full_id, detach)

    _finish(call(go), as_json, db, plugin, detach)


@executions_app.command("rerun")
def executions_rerun(
    execution_id: IdArgument,
    from_step: Annotated[
        str, typer.Option("--from", help="The first step to run again; earlier ones are reused.")
    ],
    version: Annotated[
        str, typer.Option("--version", help="pinned (the original's version) or latest.")
    ] = "pinned",
    db: DbOption = None,
    as_json: JsonOption = False,
    plugin: PluginOption = None,
    detach: DetachOption = False,
) -> None:
    """Start a new execution that reuses the outputs of the steps before --from."""
    if version not in ("pinned", "latest"):
        fail(f"--version must be pinned or latest, not {version!r}", EXIT_INVALID)
    chosen: Literal["pinned", "latest"] = "latest" if version == "latest" else "pinned"

    async def go() -> dict[str, Any]:
        async with make_engine(db, plugin) as engine:
            full_id = await engine.resolve_id(execution_id)
            new_id = await engine.rerun(full_id, from_step, version=chosen, by=_who())
            if not as_json:
                out.print(f"rerun of {full_id}: execution {new_id}", markup=False)
            return await _carry_on(engine, new_id, detach)

    _finish(call(go), as_json, db, plugin, detach)
