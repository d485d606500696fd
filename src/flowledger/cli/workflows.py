"""`flowledger workflows push|list`: pushed definitions are the ones whose triggers fire."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer

from flowledger.app import App, ListWorkflows, PushedWorkflow, PushWorkflows, TriggerDocument
from flowledger.cli.common import (
    DbOption,
    JsonOption,
    PluginOption,
    build,
    command,
    err,
    existing,
    out,
    show,
    with_app,
    workflows_app,
)
from flowledger.cli.render import table as new_table
from flowledger.cli.render import when


@workflows_app.command("push")
def push(
    files: Annotated[list[str], typer.Argument(metavar="FILE...", help="Definition files.")],
    db: DbOption = None,
    plugin: PluginOption = None,
) -> None:
    """Store each definition (a new version only when it changed) and make its triggers live."""
    request = build(lambda: PushWorkflows(files=files))

    async def go(application: App) -> list[PushedWorkflow]:
        return await application.workflows.push(request)

    for pushed in with_app(db, go, plugin):
        name, number = pushed["name"], pushed["version"]
        if pushed["changed"]:
            out.print(f"pushed {name} version {number}", highlight=False, soft_wrap=True)
        else:
            out.print(f"{name} is unchanged (version {number})", highlight=False, soft_wrap=True)
        for trigger in pushed["triggers"]:
            if trigger["type"] == "schedule":
                line = f"  schedule {_schedule(trigger)}: next {_next_text(trigger)}"
                out.print(line, highlight=False, soft_wrap=True)
        for warning in pushed["warnings"]:
            err.print(f"warning: {name}: {warning}", highlight=False, soft_wrap=True)


@workflows_app.command("list")
def list_workflows(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Show the pushed workflows, their triggers, and when each schedule fires next."""
    described = existing(db, lambda application: application.workflows.list(ListWorkflows()))
    show(described, as_json, lambda found: _table(found, db))


def _table(described: list[Any], db: str | None) -> None:
    if not described:
        push = command("workflows", "push", "FILE", db=db)
        out.print(f"no workflows are pushed yet; `{push}` pushes one")
        return
    table = new_table("workflow", "version", "pushed", "state", "trigger", "next fire")
    for item in described:
        enabled = item.get("enabled", True)
        state = "enabled" if enabled else "disabled"
        head = [item["name"], str(item["version"]), when(item["pushedAt"]), state]
        for trigger in item["triggers"] or [{"type": "-"}]:
            next_fire = _next_text(trigger) if enabled else ""
            table.add_row(*head, _summary(trigger), next_fire)
            head = ["", "", "", ""]
    out.print(table)


def _schedule(trigger: TriggerDocument | dict[str, Any]) -> str:
    spec: dict[str, Any] = dict(trigger)
    catch_up = f", catch_up {spec['catchUp']}" if spec.get("catchUp", "none") != "none" else ""
    return f"{spec['cron']!r} ({spec['timezone']}{catch_up}{_overlap(spec)})"


def _overlap(spec: dict[str, Any]) -> str:
    """``, overlap skip`` when a schedule does not simply start every tick."""
    return f", overlap {spec['overlap']}" if spec.get("overlap", "allow") != "allow" else ""


def _when(when: datetime | None, timezone: str) -> str:
    """A fire time for people: in the schedule's zone, and in UTC."""
    if when is None:
        return "never (the cron expression matches no date)"
    utc = f"{when.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    if timezone in ("UTC", "Etc/UTC"):
        return utc
    return f"{when.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M:%S %Z} ({utc})"


def _next_text(trigger: TriggerDocument | dict[str, Any]) -> str:
    if trigger["type"] != "schedule":
        return ""
    spec: dict[str, Any] = dict(trigger)
    when = spec["nextFireAt"]
    return _when(datetime.fromisoformat(when) if when else None, spec["timezone"])


def _skipped_text(trigger: TriggerDocument | dict[str, Any]) -> str:
    """``; 3 ticks skipped while an earlier one ran, the last 2026-12-01 10:00:00 UTC``
    (overlap: skip), or ''."""
    count = trigger.get("skippedTicks") or 0
    if not count:
        return ""
    noun = "tick" if count == 1 else "ticks"
    spec: dict[str, Any] = dict(trigger)
    last = spec.get("lastSkippedTickAt")
    when = _when(datetime.fromisoformat(last), spec["timezone"]) if last else "unknown"
    return f"; {count:,} {noun} skipped while an earlier one ran, the last {when}"


def _summary(trigger: dict[str, Any]) -> str:
    kind = trigger["type"]
    if kind == "schedule":
        overlap = _overlap(trigger).replace(",", "")
        return f"schedule {trigger['cron']} {trigger['timezone']}{overlap}"
    if kind == "webhook":
        return f"webhook /hooks/{trigger['path']}"
    if kind == "entity":
        return f"entity {trigger['entityType']} {','.join(trigger['events'])}"
    return str(kind)
