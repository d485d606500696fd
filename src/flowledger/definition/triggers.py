"""Triggers of a definition (SPEC §1): each kind checks its own fields and compiles once.

``TriggerSpec`` in models.py only knows ``type``; here every kind gets its own model,
so a schedule with a bad cron expression or an entity trigger with a broken ``when``
is refused at validation time with the file, line and field, like a step is.
"""

from __future__ import annotations

import hashlib
import json
import re
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from flowledger.definition.models import TriggerSpec
from flowledger.definition.previous_entity import message as null_read_message
from flowledger.definition.previous_entity import unguarded_reads
from flowledger.definition.strictness import checking_new
from flowledger.errors import (
    InputError,
    Path,
    TemplateError,
    did_you_mean,
    field_message,
    format_path,
    shown,
    unknown_field,
)
from flowledger.templates import Template, TemplateEngine, contains_template
from flowledger.unions import plain_errors

EntityEvent = Literal["created", "updated", "deleted"]
CatchUp = Literal["none", "all", "latest"]
Overlap = Literal["allow", "skip", "cancel_previous"]
Report = Callable[[str, Path], None]
#: The problems of a schedule's input a definition's check names at most.
_INPUT_PROBLEMS = 10
#: What a webhook's path starts with and holds, and an environment variable's name holds.
_ALNUM = re.compile(r"[A-Za-z0-9]")
_PATH_CHAR = re.compile(r"[A-Za-z0-9_./-]")
_NAME_CHAR = re.compile(r"[A-Za-z0-9_]")


class _Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FunctionTrigger(_Trigger):
    type: Literal["function"]


class ScheduleTrigger(_Trigger):
    type: Literal["schedule"]
    cron: str
    timezone: str = "UTC"
    #: Ticks missed while nothing ran: ``none`` skips them, ``all`` fires each, ``latest`` one.
    catch_up: CatchUp = "none"
    #: A tick while an execution of this trigger is unfinished: ``allow`` starts it all the
    #: same, ``skip`` starts nothing, ``cancel_previous`` cancels the unfinished ones first.
    overlap: Overlap = "allow"
    #: Input (function arguments) given to every execution the schedule starts.
    input: dict[str, object] = Field(default_factory=dict)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, cron: str) -> str:
        from croniter import CroniterError, croniter  # only schedules pay its import

        # Five fields, or six with seconds last (croniter's form: '* * * * * */10' is every
        # ten seconds), or an alias (@hourly, @daily, ...). croniter's seventh field
        # (years) is refused: one field too many is more likely a mistake.
        fields = cron.split()
        if not croniter.is_valid(cron) or (
            len(fields) not in (5, 6) and not cron.startswith("@") and checking_new()
        ):
            raise ValueError(
                f"{cron!r} is not a valid cron expression (five fields: minute hour "
                "day-of-month month day-of-week, e.g. '0 9 * * MON-FRI'; a sixth, last, "
                "is seconds)"
            )
        seconds_trap = len(fields) == 6 and fields[5] == "*" and set(fields[:5]) != {"*"}
        if seconds_trap and checking_new():  # a new rule: stored schedules keep running
            # '*/10 * * * * *' reads as "every ten seconds" to those who put seconds first
            # (Quartz, Spring) and fires every second of every tenth minute here.
            raise ValueError(
                f"{cron!r} fires every second of each minute it matches: the sixth field "
                f"is seconds, last. Write '{' '.join([*fields[:5], '0'])}' for once in each "
                "of those minutes, '* * * * * */10' for every ten seconds, or */1 as the "
                "sixth field if every second is meant"
            )
        try:  # a valid expression that names no real day (31 February) would never fire
            croniter(cron, datetime(2000, 1, 1)).get_next(datetime)
        except CroniterError:
            if checking_new():
                raise ValueError(f"{cron!r} never fires: no date matches it") from None
        return cron

    @field_validator("timezone")
    @classmethod
    def _valid_zone(cls, name: str) -> str:
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin' or 'UTC'"
            ) from None
        return name


def _all_events() -> list[EntityEvent]:
    return ["created", "updated", "deleted"]


class EntityTrigger(_Trigger):
    type: Literal["entity"]
    entity_type: str = Field(min_length=1, max_length=128)
    events: list[EntityEvent] = Field(default_factory=_all_events, min_length=1)
    when: str | bool | None = None


class WebhookTrigger(_Trigger):
    """``POST /hooks/{path}`` starts the workflow (app.hooks).

    ``secret_env`` names the environment variable holding the Standard Webhooks secret
    that every request's signature is checked against. A trigger without one accepts
    anybody's requests, so it must say so: ``auth: none`` (decision: refusing the
    unsigned default at validation, rather than warning, makes an open endpoint a
    choice written in the definition). ``auth: signature`` (the default) needs
    ``secret_env``; ``auth: none`` with a ``secret_env`` is contradictory and refused.
    """

    type: Literal["webhook"]
    path: str = Field(min_length=1, max_length=200)
    secret_env: str | None = Field(default=None, min_length=1)
    auth: Literal["signature", "none"] = "signature"

    # In words: a pattern's refusal showed the regex (^[A-Za-z0-9][A-Za-z0-9_./-]{0,199}$).
    @field_validator("path")
    @classmethod
    def _plain_path(cls, path: str) -> str:
        for char in path:
            if not _PATH_CHAR.fullmatch(char):
                raise ValueError(
                    "may hold only ASCII letters and digits, '_', '.', '/' and '-' (no "
                    f"spaces); {shown(char)} is not one"
                )
        if not _ALNUM.fullmatch(path[0]):
            # The path follows /hooks/: a leading slash is the usual slip.
            bare = path.lstrip("/")
            hint = f" (write {shown(bare)})" if bare and _ALNUM.fullmatch(bare[0]) else ""
            raise ValueError(
                f"must start with an ASCII letter or digit, not {shown(path[0])}{hint}"
            )
        return path

    @field_validator("secret_env")
    @classmethod
    def _variable_name(cls, name: str | None) -> str | None:
        if name is None:
            return None
        if name[0].isdigit():
            raise ValueError(
                f"is the name of an environment variable, which does not start with a "
                f"digit; {shown(name)} does"
            )
        for char in name:
            if not _NAME_CHAR.fullmatch(char):
                raise ValueError(
                    "is the name of an environment variable: it may hold only ASCII "
                    f"letters, digits and '_'; {shown(char)} is not one"
                )
        return name

    @model_validator(mode="after")
    def _authenticated(self) -> WebhookTrigger:
        if self.auth == "signature" and self.secret_env is None:
            raise ValueError(
                f"the webhook trigger on path {self.path!r} has no secret_env, so anyone "
                "could start the workflow: name the environment variable that holds its "
                "signing secret (secret_env: MY_HOOK_SECRET), or say auth: none to accept "
                "unsigned requests on purpose"
            )
        if self.auth == "none" and self.secret_env is not None:
            raise ValueError(
                f"the webhook trigger on path {self.path!r} says auth: none but names "
                f"secret_env {self.secret_env!r}: drop one of them"
            )
        return self


AnyTrigger = FunctionTrigger | ScheduleTrigger | EntityTrigger | WebhookTrigger
_MODELS: dict[str, type[_Trigger]] = {
    "function": FunctionTrigger,
    "schedule": ScheduleTrigger,
    "entity": EntityTrigger,
    "webhook": WebhookTrigger,
}


@dataclass(frozen=True, eq=False)
class CompiledTrigger:
    #: Position in the definition's ``triggers`` list (what messages name it by).
    index: int
    spec: AnyTrigger
    #: An entity trigger's ``when``, compiled (None: always).
    when: Template | None = None
    #: A schedule's identity across versions (:func:`schedule_ids`); None for other kinds.
    schedule_id: str | None = None


def schedule_content(cron: str, timezone: str, given: Mapping[str, Any]) -> str:
    """What makes a schedule the same one in another version: its cron (spaces aside),
    time zone and input, not its place in ``triggers`` nor its catch_up or overlap."""
    text = json.dumps(
        [" ".join(cron.split()), timezone, given],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def schedule_ids(contents: Sequence[str]) -> list[str]:
    """The identity of each schedule of one version, given their :func:`schedule_content`
    in ``triggers`` order: the content, and for the second and later schedule of the same
    content ``-2``, ``-3``… (two such schedules are two, each firing every tick).

    A schedule's progress (storage.schedules) and its ticks' trigger keys are keyed by it
    (with the workflow name): a push that inserts, removes or reorders triggers moves
    none of them to another schedule. The definition language has no trigger ``id``
    (SPEC §1), so the content is what a schedule is. Never holds ':', so the prefix of
    one schedule's trigger keys (``schedule:<workflow>:<id>:``) is no other's."""
    seen: dict[str, int] = {}
    found = []
    for content in contents:
        seen[content] = seen.get(content, 0) + 1
        found.append(content if seen[content] == 1 else f"{content}-{seen[content]}")
    return found


def _message(model: type[BaseModel], error: Any) -> str:
    """``cron: must be text, not 5``; ``unknown field 'timezon'; did you mean …``."""
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden" and loc:
        fields = [field.alias or name for name, field in model.model_fields.items()]
        return unknown_field(loc[-1], fields)
    where = format_path(loc)
    message = field_message(error) + _closest(error)
    return f"{where}: {message}" if where else message


def _closest(error: Any) -> str:
    """``; did you mean 'skip'?`` after a misspelt choice (``overlap: skipp``)."""
    given = error.get("input")
    if error["type"] != "literal_error" or not isinstance(given, str):
        return ""
    expected = str(error.get("ctx", {}).get("expected", ""))
    return did_you_mean(given, expected.replace("'", "").replace(" or ", ", ").split(", "))


def by_hand_trigger(
    triggers: Sequence[CompiledTrigger], kind: str, arguments: Any, now: datetime
) -> dict[str, Any]:
    """The ``trigger`` of a start by hand (``run``, ``start``, ``workflows trigger``, the
    API's start): ``{type: kind, arguments}``, and for a workflow with a schedule trigger
    ``scheduledAt`` (``now``), as a tick at ``now`` would have it (Temporal's "trigger a
    schedule now", Airflow's manual run): a workflow that reads ``trigger.scheduledAt``
    runs by hand as it runs on its schedule instead of failing there. ``type`` still
    tells a start by hand from a tick. Its ``cronExpression`` and ``timezone`` only when
    it has exactly one schedule: of several, none is the one a start by hand is a tick
    of, and the first (as it was) would be a guess; a read of them fails naming the path,
    as a read of any field the trigger lacks does."""
    from flowledger.timeutil import iso

    trigger: dict[str, Any] = {"type": kind, "arguments": arguments}
    schedules = [t.spec for t in triggers if isinstance(t.spec, ScheduleTrigger)]
    if schedules:
        trigger["scheduledAt"] = iso(now)
    if len(schedules) == 1:
        trigger.update(cronExpression=schedules[0].cron, timezone=schedules[0].timezone)
    return trigger


def compile_triggers(
    triggers: Sequence[TriggerSpec],
    templates: TemplateEngine,
    report: Report,
    input_schema: Mapping[str, Any] | None = None,
) -> tuple[CompiledTrigger, ...]:
    """Each trigger checked and compiled; ``input_schema``: the workflow's, which a
    schedule's literal ``input`` is held to (in a new definition)."""
    compiled: list[CompiledTrigger] = []
    for index, trigger in enumerate(triggers):
        path: Path = ("triggers", index)
        model = _MODELS.get(trigger.type)
        if model is None:  # a salvaged trigger of no known type: refused where parsed
            continue
        try:
            spec = cast(AnyTrigger, model.model_validate(trigger.model_dump()))
        except ValidationError as exc:
            for error in plain_errors(exc.errors()):
                loc = tuple(error["loc"])
                report(f"{trigger.type} trigger: {_message(model, error)}", (*path, *loc))
            continue
        when = None
        if isinstance(spec, EntityTrigger) and spec.when is not None:
            when = _compile_when(spec.when, templates, (*path, "when"), report)
            if when is not None and checking_new():  # a new rule: stored triggers keep theirs
                for read in unguarded_reads(when.source, spec.events):
                    report(null_read_message(read), (*path, "when"))
        if isinstance(spec, ScheduleTrigger) and input_schema is not None and checking_new():
            # A new rule: a stored schedule whose input does not fit starts Failed ticks.
            _check_schedule_input(spec, input_schema, (*path, "input"), report)
        compiled.append(CompiledTrigger(index, spec, when))
    return _with_schedule_ids(compiled)


def _with_schedule_ids(compiled: list[CompiledTrigger]) -> tuple[CompiledTrigger, ...]:
    specs = {t.index: t.spec for t in compiled if isinstance(t.spec, ScheduleTrigger)}
    contents = [schedule_content(s.cron, s.timezone, s.input) for s in specs.values()]
    ids = dict(zip(specs, schedule_ids(contents), strict=True))
    return tuple(replace(t, schedule_id=ids.get(t.index)) for t in compiled)


def _check_schedule_input(
    spec: ScheduleTrigger, schema: Mapping[str, Any], path: Path, report: Report
) -> None:
    """A schedule's ``input`` is written once and given to every tick: one that breaks
    ``input_schema`` would start no tick, so it is refused where it is written (as
    ``start`` would refuse it), with the schema's defaults filled in first."""
    from flowledger.schema_check import (
        schema_problem,
        schema_problems,
        validator_for,
        with_defaults,
    )

    if schema_problem(schema) is not None:
        return  # the schema itself is refused, at its own place
    try:
        value = with_defaults(schema, dict(spec.input))
        found, total = schema_problems(validator_for(schema), value, "input", _INPUT_PROBLEMS)
    except InputError:  # a reference the schema cannot follow: refused at the schema
        return
    for where, message in found:
        report(
            f"{message}; every tick starts the workflow with this input, so it must "
            "match input_schema",
            (*path, *where[1:]),
        )
    if total > len(found):
        report(f"and {total - len(found)} more problems of the schedule's input", path)


def _compile_when(
    when: str | bool, templates: TemplateEngine, path: Path, report: Report
) -> Template | None:
    source = ("{{ true }}" if when else "{{ false }}") if isinstance(when, bool) else when
    if not contains_template(source):
        report(
            "when must be a template like \"{{ trigger.entity.payload.Status == 'New' }}\"", path
        )
        return None
    try:
        template = templates.compile(source)
    except TemplateError as exc:
        report(exc.message, path)
        return None
    for ref in template.references:
        if ref.root not in ("trigger", "context"):
            report(f"an entity trigger's when can read trigger and context, not {ref.root!r}", path)
            return None
    return template
