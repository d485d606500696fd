"""`flowledger workflows push|list`: pushed definitions are the ones whose triggers fire."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from flowledger.cli.common import (
    DbOption,
    JsonOption,
    PluginOption,
    call,
    make_engine,
    out,
    print_json,
    workflows_app,
)
from flowledger.definition.compiled import CompiledWorkflow
from flowledger.definition.models import TriggerSpec
from flowledger.definition.ticks import next_fire_times, next_tick
from flowledger.definition.triggers import ScheduleTrigger, compile_triggers
from flowledger.errors import DefinitionError, InputError, Problem
from flowledger.runtime.engine import Engine
from flowledger.storage import WorkflowVersion
from flowledger.templates import TemplateEngine
from flowledger.timeutil import iso


@workflows_app.command("push")
def push(
    files: Annotated[list[str], typer.Argument(metavar="FILE...", help="Definition files.")],
    db: DbOption = None,
    plugin: PluginOption = None,
) -> None:
    """Store each definition (a new version only when it changed) and make its triggers live."""

    async def go() -> list[str]:
        engine = make_engine(db, plugin)
        workflows = _load_all(engine, files)  # every file is checked before anything is pushed
        lines = []
        async with engine:
            now = engine.clock.now()
            for workflow in workflows:
                version, changed = await engine.push(workflow)
                if changed:
                    lines.append(f"pushed {workflow.name} version {version.version}")
                else:
                    lines.append(f"{workflow.name} is unchanged (version {version.version})")
                for trigger, when in next_fire_times(workflow, now):
                    assert isinstance(trigger.spec, ScheduleTrigger)
                    spec = trigger.spec
                    lines.append(f"  schedule {_schedule(spec)}: next {_when(when, spec.timezone)}")
        return lines

    for line in call(go):
        out.print(line, markup=False, highlight=False, soft_wrap=True)


def _load_all(engine: Engine, files: list[str]) -> list[CompiledWorkflow]:
    problems: list[Problem] = []
    workflows: list[CompiledWorkflow] = []
    for file in files:
        try:
            workflows.append(engine.load(file))
        except DefinitionError as exc:
            problems.extend(exc.problems)
    if problems:
        raise DefinitionError(problems)
    seen: dict[str, str] = {}
    for file, workflow in zip(files, workflows, strict=True):
        if workflow.name in seen:
            raise InputError(
                f"{seen[workflow.name]} and {file} both define workflow {workflow.name!r}; "
                "push one of them"
            )
        seen[workflow.name] = file
    return workflows


@workflows_app.command("list")
def list_workflows(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Show the pushed workflows, their triggers, and when each schedule fires next."""

    async def go() -> list[dict[str, Any]]:
        async with make_engine(db) as engine:
            now = engine.clock.now()
            return [
                _describe(version, pushed_at, engine.templates, now)
                for version, pushed_at in await engine.store.active_workflows()
            ]

    described = call(go)
    if as_json:
        print_json(described)
        return
    if not described:
        out.print("no workflows are pushed yet; `flowledger workflows push FILE` pushes one")
        return
    table = Table(header_style="bold", box=None)
    for column in ("workflow", "version", "pushed", "trigger", "next fire"):
        table.add_column(column)
    for item in described:
        head = [item["name"], str(item["version"]), item["pushedAt"][:19].replace("T", " ")]
        for trigger in item["triggers"] or [{"type": "-"}]:
            table.add_row(*head, _summary(trigger), _next_text(trigger))
            head = ["", "", ""]
    out.print(table)


def _describe(
    version: WorkflowVersion, pushed_at: datetime, templates: TemplateEngine, now: datetime
) -> dict[str, Any]:
    """A pushed workflow as JSON. Triggers are read from the stored document alone, so
    listing needs none of the plugins its steps use."""
    document = json.loads(version.document)
    specs = [TriggerSpec.model_validate(t) for t in document.get("triggers") or []]
    triggers = []
    for compiled in compile_triggers(specs, templates, lambda message, path: None):
        spec = compiled.spec
        described: dict[str, Any] = {_camel(k): v for k, v in spec.model_dump().items()}
        described["nextFireAt"] = None
        if isinstance(spec, ScheduleTrigger):
            when = next_tick(spec, now)
            if when is not None:
                described["nextFireAt"] = iso(when)
                described["nextFireAtLocal"] = when.astimezone(ZoneInfo(spec.timezone)).isoformat()
        triggers.append(described)
    return {
        "name": version.name,
        "version": version.version,
        "versionId": version.id,
        "pushedAt": iso(pushed_at),
        "triggers": triggers,
    }


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _schedule(spec: ScheduleTrigger) -> str:
    catch_up = f", catch_up {spec.catch_up}" if spec.catch_up != "none" else ""
    return f"{spec.cron!r} ({spec.timezone}{catch_up})"


def _when(when: datetime | None, timezone: str) -> str:
    """A fire time for people: in the schedule's zone, and in UTC."""
    if when is None:
        return "never (the cron expression matches no date)"
    utc = f"{when.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    if timezone in ("UTC", "Etc/UTC"):
        return utc
    return f"{when.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M:%S %Z} ({utc})"


def _next_text(trigger: dict[str, Any]) -> str:
    if trigger["type"] != "schedule":
        return ""
    when = trigger["nextFireAt"]
    return _when(datetime.fromisoformat(when) if when else None, trigger["timezone"])


def _summary(trigger: dict[str, Any]) -> str:
    kind = trigger["type"]
    if kind == "schedule":
        return f"schedule {trigger['cron']} {trigger['timezone']}"
    if kind == "webhook":
        return f"webhook /hooks/{trigger['path']}"
    if kind == "entity":
        return f"entity {trigger['entityType']} {','.join(trigger['events'])}"
    return str(kind)
