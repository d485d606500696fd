"""The step-type plugin API: built-in and user step types are declared the same way.

A step type is a handler function with a pydantic input model and (optionally) an
output model. The runtime owns attempts, retries, timeouts and state
transitions; a handler only turns validated input into output, or raises.
"""

from __future__ import annotations

import collections
import collections.abc
import inspect
import json
import logging
import sys
import threading
import time
import types
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Generic,
    Literal,
    ParamSpec,
    Protocol,
    TypeVar,
    Union,
    cast,
    get_args,
    get_origin,
    get_type_hints,
)

from pydantic import AliasChoices, BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from flowledger.errors import PluginError, StepError
from flowledger.jsonvalues import NotJSONError, binary_bytes, non_finite
from flowledger.steps.artifact_access import ArtifactAccess
from flowledger.steps.entity_access import EntityAccess
from flowledger.steps.inference import may_hide_non_finite

if TYPE_CHECKING:  # the engine's client is made on first use (see runtime.lazy_http)
    import httpx

Handler = Callable[[Any, "StepContext"], Awaitable[Any] | Any]
#: ``resume(input, ctx, state)``: an ``async def`` or a plain ``def``, as a handler.
Resume = Callable[[Any, "StepContext", Mapping[str, Any]], Awaitable[Any] | Any]
P = ParamSpec("P")
R = TypeVar("R")
_T = TypeVar("_T")


@dataclass(frozen=True)
class Suspend:
    """Returned by a handler to park the step durably until ``until``, or, with ``until``
    None, until an input comes from outside (a callback: the step submitted a job
    elsewhere, whose webhook answers): ``Engine.submit_input(execution_id, step_id,
    data)`` (``executions input``, the API's, the web's) wakes it with any JSON, which
    ``StepType.resume`` reads as ``state["input"]``; each wait takes the first input sent.
    Parked until a time, an input wakes it too, before its time (a callback, and a poll
    at ``until`` should none come): its resume finds ``state["input"]`` when an input
    woke it, none of the engine's when the time did; an input after its time is too
    late. (A step type without ``resume``, and the built-in ``sys.delay``, wait for the
    time only: an input sent to one is refused.)

    The step stays ``InProgress`` without a running handler, and so does the execution
    (no person is asked); after a restart it is not re-run, it keeps waiting. When it
    wakes, ``StepType.resume`` produces its output (or parks again), given ``state``.
    ``state`` is the handler's, under any names; the engine keeps what it needs with it
    (the attempt's ``ctx.variables`` changes, pending until it completes; what it waits
    for; the input that woke it) under the one key ``"__flowledger__"``, whose value
    here is not kept, and hands the resume ``"input"`` over the handler's own. JSON must
    hold ``state`` as it is (it is stored), else the step fails.
    """

    until: datetime | None
    state: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.until is not None and self.until.utcoffset() is None:
            # A time without a zone means a different moment on every machine.
            raise StepError(
                "Suspend(until=...) needs a time with a zone (datetime.now(UTC) + ...), "
                f"not the naive {self.until.isoformat()}",
                retryable=False,
            )


#: What ``ctx.variables.apply`` does (``sys.set_variable``'s ``op``): a typo is a mypy
#: error, and an op outside these a StepError at the call (``apply_variable_op``).
VariableOp = Literal["set", "increment", "append", "merge"]


class VariableAccess(Protocol):
    """The execution's user variables, as a step may change them (atomically)."""

    def get(self, name: str) -> Any: ...

    def apply(self, name: str, op: VariableOp, value: Any) -> Any:
        """Apply ``op`` (set, increment, append, merge) and return the new value."""
        ...


class Unavailable:
    """Stands in for ``ctx.variables``, ``ctx.entities`` or ``ctx.artifacts`` where the
    context has none (a ``StepContext`` made by hand, outside an engine): any use raises
    a StepError that says so. The fields are typed as always there, so a handler needs no
    ``assert ctx.entities is not None`` under ``mypy --strict``, and an engine always
    gives them."""

    def __init__(self, what: str) -> None:
        self._what = what

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and friends probe these: not a use
            raise AttributeError(name)
        raise StepError(
            f"ctx.{self._what} is not available: this StepContext was made without it "
            f"({_GIVEN_BY[self._what]})",
            retryable=False,
        )

    def __repr__(self) -> str:
        return f"<no {self._what}>"


class HeartbeatSaver(Protocol):
    """What keeps an attempt's ``ctx.heartbeat`` details (runtime.heartbeats.Heartbeat)."""

    def __call__(self, details: Any) -> None: ...

    def flush(self) -> None: ...


#: The most a step's ``ctx.heartbeat`` details may take as JSON: progress, not data.
MAX_HEARTBEAT_BYTES = 4096


@dataclass(init=False)
class StepContext:
    """What a handler may know about the step execution it runs."""

    execution_id: str
    step_id: str
    step_execution_id: str
    attempt: int
    #: Stable across every attempt and every re-run after a crash of this step execution.
    idempotency_key: str
    loop: Mapping[str, int]
    started_at: datetime
    http: httpx.AsyncClient
    # ``logger`` and ``artifacts``: properties below (made at their first use in a run).
    #: The execution's variables, as this attempt changes them.
    variables: VariableAccess
    #: The step's ``input`` as written in the definition, before templates were rendered.
    definition_input: Any
    #: Hops from the root cause (sub-workflow nesting, entity-trigger chains).
    depth: int
    #: The entity store (writes fire entity triggers).
    entities: EntityAccess
    #: The engine's time (UTC), as timers and records read it: a test's
    #: flowledger.testing.VirtualClock moves it ahead.
    now: Callable[[], datetime]
    #: What an earlier attempt of this step last gave ``heartbeat`` (None on the first,
    #: or when none did): where a long step resumes after its process was stopped.
    heartbeat_details: Any

    def __init__(
        self,
        execution_id: str,
        step_id: str,
        step_execution_id: str,
        attempt: int,
        idempotency_key: str,
        loop: Mapping[str, int],
        started_at: datetime,
        http: httpx.AsyncClient,
        logger: logging.LoggerAdapter[logging.Logger] | None = None,
        variables: VariableAccess | None = None,
        definition_input: Any = None,
        depth: int = 0,
        entities: EntityAccess | None = None,
        artifacts: ArtifactAccess | None = None,
        now: Callable[[], datetime] | None = None,
        heartbeat_details: Any = None,
        heartbeat: Callable[[], HeartbeatSaver] | None = None,
        *,
        make_logger: Callable[[], logging.LoggerAdapter[logging.Logger]] | None = None,
        make_artifacts: Callable[[], ArtifactAccess] | None = None,
    ) -> None:
        # The engine gives ``logger`` and ``artifacts`` as makers, called at their first
        # use: a context is made per attempt, and most steps neither log nor save a file.
        if logger is None and make_logger is None:
            raise TypeError("StepContext needs a logger (or make_logger)")
        # None (no such service here) becomes an Unavailable that says so when used: the
        # handler sees the fields as always there.
        self.execution_id = execution_id
        self.step_id = step_id
        self.step_execution_id = step_execution_id
        self.attempt = attempt
        self.idempotency_key = idempotency_key
        self.loop = loop
        self.started_at = started_at
        self.http = http
        self._logger = logger
        self._make_logger = make_logger
        self.variables = variables if variables is not None else _unavailable("variables")
        self.definition_input = definition_input
        self.depth = depth
        self.entities = entities if entities is not None else _unavailable("entities")
        if artifacts is None and make_artifacts is None:
            artifacts = _unavailable("artifacts")
        self._artifacts = artifacts
        self._make_artifacts = make_artifacts
        self.now = now if now is not None else _utcnow
        self.heartbeat_details = heartbeat_details
        #: Makes the attempt's saver, at its first ``heartbeat`` (few steps ever call it).
        self._make_saver = heartbeat
        self._saver: HeartbeatSaver | None = None
        self._heartbeat_at: float | None = None

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """Logs as any logger does; in a run, lines at or above FLOWLEDGER_STEP_LOG_LEVEL
        are kept with the attempt (``executions logs``), secrets redacted."""
        logger = self._logger
        return logger if logger is not None else self._made("_logger", self._make_logger)

    @property
    def artifacts(self) -> ArtifactAccess:
        """Files this step saves, linked to its execution and step."""
        made = self._artifacts
        return made if made is not None else self._made("_artifacts", self._make_artifacts)

    def _made(self, name: str, make: Callable[[], _T] | None) -> _T:
        """The value of attribute ``name``, made by ``make`` at its first use, once per
        context: a plain def handler's threads may ask at the same moment."""
        with _MADE_ON_FIRST_USE:
            made: _T | None = getattr(self, name)
            if made is None:
                assert make is not None  # __init__ wants a value or its maker
                made = make()
                setattr(self, name, made)
        return made

    @property
    def heartbeat_at(self) -> float | None:
        """When this attempt last called ``heartbeat`` (``time.monotonic()``), or None:
        what a step's ``heartbeat_timeout`` watches."""
        return self._heartbeat_at

    def heartbeat(self, details: Any) -> None:
        """Save ``details`` (JSON, at most MAX_HEARTBEAT_BYTES encoded) as this step's
        progress: durably, at most about once a second however often it is called, and
        read by the step's next attempt as ``heartbeat_details`` (a re-run after its
        process stopped, or a retry). Safe to call from a plain ``def`` handler's thread.
        Each call also tells a step's ``heartbeat_timeout`` that the handler is alive."""
        try:
            text = json.dumps(details, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"ctx.heartbeat: details must be JSON data: {exc}") from None
        if len(text.encode()) > MAX_HEARTBEAT_BYTES:
            raise ValueError(
                f"ctx.heartbeat: details take {len(text.encode())} bytes as JSON, more than "
                f"{MAX_HEARTBEAT_BYTES}: keep a cursor (a page, an offset), not the data"
            )
        # Before the saver, which throttles: the watch needs every call's time.
        self._heartbeat_at = time.monotonic()
        if self._make_saver is None:  # a context made outside a run (tests)
            return
        saver = self._saver or self._made("_saver", self._make_saver)
        saver(json.loads(text))  # a copy: later changes by the step stay out

    def flush_heartbeat(self) -> None:
        """Save now the details that ``heartbeat`` holds back for its once-a-second
        write (on the event loop). The engine calls it when an attempt ends without
        output, so the next attempt resumes from the last call, not from the one before."""
        if self._saver is not None:
            self._saver.flush()


#: Held while a context makes what it makes at first use (its logger, its artifacts, its
#: heartbeat saver): one of each per context (one throttle, one buffer's logger).
_MADE_ON_FIRST_USE = threading.Lock()

#: Where a test gets each (flowledger.testing.step_context).
_GIVEN_BY = {
    "variables": "flowledger.testing.step_context() gives a context with variables",
    "entities": "in a test, pass step_context(engine=...) an open Engine, or entities=",
    "artifacts": "in a test, pass step_context(engine=...) an open Engine, or artifacts=",
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _unavailable(what: str) -> Any:
    return Unavailable(what)


class StepKind(StrEnum):
    """How the scheduler runs a step: the one thing it asks of a step type.

    ``TASK`` is every ordinary step (built-in or plugin): its handler turns input into
    output, or suspends. The other kinds are *structural*: the scheduler itself gives them
    their meaning, through the driver that ``flowledger.runtime.drivers.DRIVERS`` maps the
    kind to. The compile-time traits of a kind are the properties below, so the compiler
    and the reference checker never compare type names. Adding a structural kind is one
    member here (with its traits) plus its driver. Only built-in (``sys.*``) types may
    claim a structural kind: the registry refuses a plugin that does.

    A StrEnum, not a plain Enum: the runner looks its driver up by kind on every step,
    and a str hash is the C one (a plain Enum hashes through a Python method).
    """

    TASK = "task"
    #: Its ``result`` output chooses the ``then``/``else`` branch (read by the scheduler).
    CONDITION = "condition"
    #: Runs a body graph once per item, or until a condition holds after an iteration;
    #: ``loop.<id>`` is visible inside the body.
    LOOP = "loop"
    #: Starts child executions and waits for them; ``loop.<id>`` per item in its own input.
    SUB_WORKFLOW = "sub_workflow"
    #: Waits for a person's input, checked against the JSON Schema in its input.
    WAIT_FOR_INPUT = "wait_for_input"
    #: Completing one (outside any loop) ends the execution CompletedWithNoActionTaken.
    NO_ACTION = "no_action"

    @property
    def structural(self) -> bool:
        return self is not StepKind.TASK

    @property
    def has_body(self) -> bool:
        """Steps of this kind carry a body graph under ``steps`` and open a loop scope."""
        return self is StepKind.LOOP

    @property
    def branches(self) -> bool:
        """Steps of this kind may write the ``then``/``else`` sugar."""
        return self is StepKind.CONDITION

    @property
    def own_loop_frame(self) -> bool:
        """The step's own input sees ``loop.<its id>`` (one rendering per item)."""
        return self is StepKind.SUB_WORKFLOW


@dataclass(frozen=True)
class StepType:
    """A registered step type. Build one with :func:`step_type`."""

    name: str
    #: None for a structural kind the scheduler runs itself (its driver does the work).
    handler: Handler | None
    input_model: type[BaseModel]
    output_model: type[BaseModel] | None = None
    kind: StepKind = StepKind.TASK
    #: Deterministic and free of side effects: the runtime may run it inside the
    #: commit that records its completion, instead of committing a start first.
    pure: bool = False
    #: Called when a suspended step wakes: ``resume(input, ctx, state)`` returns the output.
    #: A plain ``def`` runs in a worker thread, as a plain handler does.
    resume: Resume | None = None
    description: str = ""
    #: The output is this input field as rendered (``sys.transform``'s ``value``): a
    #: literal there tells the reference checker the output's shape.
    output_is_input: str | None = None
    #: The output is checked against the JSON Schema in this input field
    #: (``sys.wait_for_input``'s ``schema``): a literal schema there is the output type.
    output_schema_in_input: str | None = None
    #: The step sets the user variable its input field ``name`` names; its output is
    #: ``{name, value}`` (``sys.set_variable``): the compiler declares the name, a rerun
    #: replays the value.
    sets_variable: bool = False
    #: Top-level input fields that may hold ``{{ secrets.NAME }}`` (the fields that send
    #: it somewhere, such as ``sys.http_request``'s ``headers``). Everywhere else the
    #: definition is refused; these fields are stored with the reference, not the value.
    secret_fields: frozenset[str] = frozenset()
    #: Its handler returns at once and the step then waits (``sys.delay``): a ``timeout``,
    #: which bounds a handler's run, would do nothing, so a definition giving one is refused.
    timeout_has_no_effect: bool = False
    #: Its step always fails (``sys.fail``), and never retryably: unless it may
    #: (``continue_on_error``), a step that runs only after it can never run, and a new
    #: definition is refused for it, as for a ``retry`` on it.
    never_completes: bool = False
    #: A stand-in for a type whose plugin this process lacks (StepRegistry.standing_in):
    #: enough to start, show or draw a workflow, never to run it.
    stands_in: bool = False
    #: An input field that is not rendered when the step starts: its driver renders it
    #: at the end of each iteration of the step's body, in that iteration's scope
    #: (``sys.loop``'s ``until``). The reference checker reads it as from there.
    iteration_end_field: str | None = None
    #: Rules between input fields that hold before templates render (``sys.loop``: one
    #: of ``items`` or ``until``): given the input as written, each problem as (field or
    #: None for the input as a whole, message). Validation asks it of an input with
    #: templates, whose model cannot run before the templates do; the model runs the same
    #: rules at run time.
    input_rules: Callable[[Mapping[str, Any]], list[tuple[str | None, str]]] | None = None

    @cached_property
    def is_coroutine(self) -> bool:
        """The handler is an ``async def`` (asked once per type, not once per step)."""
        return inspect.iscoroutinefunction(self.handler)

    @cached_property
    def resume_is_coroutine(self) -> bool:
        """``resume`` is an ``async def``."""
        return inspect.iscoroutinefunction(self.resume)

    def output_json_schema(self) -> dict[str, Any] | None:
        """JSON Schema of the output as stored (``dump_output``), which template references
        are checked against before a run: field names by alias, a Decimal as text (marked
        ``format: decimal``), computed fields included."""
        if self.output_model is None:
            return None
        return self.output_model.model_json_schema(
            by_alias=True, mode="serialization", schema_generator=_StoredOutputSchema
        )

    def dump_output(self, result: Any) -> Any:
        """What a handler returned, as the JSON data stored for the step: a model by
        alias, the way it reads from outside (``model_dump(mode="json", by_alias=True)``).
        With an output model, the result is validated against it first, whatever it is: a
        dict, another model class, or an instance that skipped validation
        (``model_construct()``) or was changed after it. An instance is validated from
        its fields, so the model's serializers never have to read back what they wrote."""
        model = self.output_model
        if model is None:
            if isinstance(result, BaseModel):
                return _json_dump(result)
            return result
        if not isinstance(result, BaseModel):
            checked = model.model_validate(result)
        elif model.__pydantic_root_model__:
            checked = model.model_validate(getattr(result, "root", result))
        else:
            fields = _fields_of(result)
            if type(result) is not model and isinstance(result, model):
                # A subclass's instance is one of the model's: it is stored as the model.
                fields = {k: v for k, v in fields.items() if k in model.__pydantic_fields__}
            checked = model.model_validate(fields, by_alias=False, by_name=True)
        return _json_dump(checked)


def _json_dump(instance: BaseModel) -> Any:
    """``model_dump(mode="json", by_alias=True)``, or NotJSONError naming where the model
    holds NaN or an infinity: JSON mode writes one held by an ``Any`` field as null
    (pydantic's ``ser_json_inf_nan``), where a ``float`` field keeps it for
    ``jsonvalues.to_plain`` to refuse. The Python-mode dump keeps it to be found (after
    the JSON one, which refuses a cycle first), unless the model has no place where JSON
    mode would write it as null (``inference``)."""
    try:
        dumped = instance.model_dump(mode="json", by_alias=True)
    except UnicodeDecodeError:  # a bytes field holding what is not UTF-8 text
        raise NotJSONError(binary_bytes(instance.model_dump(by_alias=True), "output")) from None
    if not may_hide_non_finite(type(instance)):
        return dumped
    found = non_finite(instance.model_dump(by_alias=True), "output")
    if found is not None:
        raise NotJSONError(found)
    return dumped


def _fields_of(instance: BaseModel, path: frozenset[int] = frozenset()) -> dict[str, Any]:
    """An instance's fields by Python name, each nested model instance in them (in lists,
    tuples and dicts too) as its own fields: pydantic takes a nested instance as valid
    without looking (``revalidate_instances="never"``), so one made by
    ``model_construct()``, or changed after it was made, was stored unchecked. ``path``:
    the containers above, so a cycle is left as it is, for validation to refuse."""
    path = path | {id(instance)}
    fields: dict[str, Any] = dict(instance.__dict__)
    extra = instance.__pydantic_extra__
    if extra:
        fields.update(extra)
    for name, value in fields.items():
        if isinstance(value, BaseModel | list | tuple | dict):
            fields[name] = _unchecked(value, path)
    return fields


def _unchecked(value: Any, path: frozenset[int]) -> Any:
    """``value`` with every model instance in it as its fields (see ``_fields_of``)."""
    if id(value) in path:  # a cycle: as it is (validation says where)
        return value
    if isinstance(value, BaseModel):
        if type(value).__pydantic_root_model__:
            return _unchecked(getattr(value, "root", value), path | {id(value)})
        return _fields_of(value, path)
    if isinstance(value, list | tuple):
        inner = path | {id(value)}
        return [_unchecked(item, inner) for item in value]
    if isinstance(value, dict):
        inner = path | {id(value)}
        return {key: _unchecked(item, inner) for key, item in value.items()}
    return value


def stored_loc(model: type[BaseModel], loc: Sequence[str | int]) -> tuple[str | int, ...]:
    """A validation error's path with each field named as ``dump_output`` stores it (by
    its serialization alias, at every depth), not by the Python name or the key the
    value was found under. A union's branch names are kept (``unions`` reads them)."""
    return _stored_loc(model, tuple(loc))[0]


#: Containers whose items an error's path indexes by position, and those it indexes by key.
_SEQUENCES = {list, tuple, set, frozenset, collections.deque, collections.abc.Sequence}
_SEQUENCES |= {collections.abc.MutableSequence, collections.abc.Set, collections.abc.MutableSet}
_MAPPINGS = {dict, collections.OrderedDict, collections.defaultdict, collections.abc.Mapping}
_MAPPINGS |= {collections.abc.MutableMapping}


def _stored_loc(tp: Any, loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], bool]:
    """``loc`` renamed along ``tp``, and whether every segment was understood (the rest
    is kept as it was from the first one that was not)."""
    if not loc:
        return (), True
    origin = get_origin(tp)
    if origin is Annotated:
        return _stored_loc(get_args(tp)[0], loc)
    fields = getattr(tp, "__pydantic_fields__", None) if isinstance(tp, type) else None
    if fields is not None:  # a model or a pydantic dataclass
        if getattr(tp, "__pydantic_root_model__", False):  # its path has no "root"
            return _stored_loc(fields["root"].annotation, loc)
        name = _field_named(fields, loc[0])
        if name is None:
            return loc, False
        info = fields[name]
        rest, understood = _stored_loc(info.annotation, loc[1:])
        return (info.serialization_alias or info.alias or name, *rest), understood
    if origin is Union or origin is types.UnionType:
        members = [m for m in get_args(tp) if m is not type(None)]
        if len(members) == 1:  # Optional: no branch in the path
            return _stored_loc(members[0], loc)
        # The branch is named in the path: by its class, by its discriminator's value,
        # else by a type's text; then the branch whose fields the rest names is the one.
        head, rest = loc[0], loc[1:]
        named = [m for m in members if getattr(m, "__name__", None) == head or _tagged(m, head)]
        for member in named or members:
            path, understood = _stored_loc(member, rest)
            if understood:
                return (head, *path), True
        return loc, False
    if origin in _SEQUENCES and isinstance(loc[0], int):
        args = get_args(tp)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            item = args[loc[0]] if loc[0] < len(args) else Any
        else:
            item = args[0] if args else Any
        rest, understood = _stored_loc(item, loc[1:])
        return (loc[0], *rest), understood
    if origin in _MAPPINGS:
        args = get_args(tp)
        rest, understood = _stored_loc(args[1] if len(args) == 2 else Any, loc[1:])
        return (loc[0], *rest), understood
    return loc, False


def _tagged(member: Any, tag: Any) -> bool:
    """``member`` is a model one of whose fields is a Literal of ``tag`` (a discriminated
    union names its branch by that value)."""
    fields = getattr(member, "__pydantic_fields__", None) if isinstance(member, type) else None
    return fields is not None and any(
        get_origin(info.annotation) is Literal and tag in get_args(info.annotation)
        for info in fields.values()
    )


def _field_named(fields: Mapping[str, Any], key: Any) -> str | None:
    """The field an error's path names by its Python name or any alias it validates by."""
    if key in fields:
        return str(key)
    for name, info in fields.items():
        aliases: list[Any] = [info.alias, info.serialization_alias]
        if isinstance(info.validation_alias, AliasChoices):
            aliases.extend(info.validation_alias.choices)
        else:
            aliases.append(info.validation_alias)
        if key in aliases:
            return str(name)
    return None


@dataclass(frozen=True)
class StepFunction(StepType, Generic[P, R]):
    """A step type :func:`step_type` made from a function, and still that function: a
    unit test calls ``await send_email(SendEmailInput(...), ctx)`` with its own types
    (``flowledger.testing.step_context`` makes a ``ctx``) and gets what it returns."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        handler: Callable[P, R] = self.handler  # type: ignore[assignment]
        return handler(*args, **kwargs)


class _StoredOutputSchema(GenerateJsonSchema):
    """Pydantic's serialization-mode schema, with a Decimal (stored as text, to keep its
    digits) marked as one: the reference checker refuses arithmetic on it."""

    def decimal_schema(self, schema: core_schema.DecimalSchema) -> JsonSchemaValue:
        json_schema = super().decimal_schema(schema)
        if self.mode == "serialization" and json_schema.get("type") == "string":
            json_schema = {**json_schema, "format": "decimal"}
        return json_schema


_NAMESPACED = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"


def step_type(
    name: str,
    *,
    pure: bool = False,
    description: str = "",
    kind: StepKind = StepKind.TASK,
    output_is_input: str | None = None,
    output_schema_in_input: str | None = None,
    sets_variable: bool = False,
    secret_fields: Iterable[str] = (),
    resume: Resume | None = None,
) -> Callable[[Callable[P, R]], StepFunction[P, R]]:
    """Declare a custom step type from a function; the step type it makes can still be
    called as the function (:class:`StepFunction`).

    The function's first parameter is annotated with a pydantic input model, its
    return annotation is the output model (or ``dict``/``Any`` for free-form output; a
    class that is neither is refused)::

        @step_type("acme.send_email")
        async def send_email(data: SendEmailInput, ctx: StepContext) -> SendEmailOutput:
            ...

    A handler that returns :class:`Suspend` parks its step durably (until a time, across
    restarts); ``resume(input, ctx, state)`` is called when it wakes, with the
    ``Suspend``'s ``state``, and returns the output (or suspends again). Without
    ``resume`` the handler itself is called again. Either may be an ``async def`` or a
    plain ``def`` (run in a worker thread). Annotate such a handler ``-> Out | Suspend``:
    ``Out`` is the output model; ``-> Suspend`` alone leaves it to ``resume``'s annotation.
    """
    import re

    if not re.match(_NAMESPACED, name):
        raise PluginError(
            f"step type name {name!r} must be namespaced like 'acme.send_email' "
            "(lowercase words joined by dots)"
        )

    def wrap(handler: Callable[P, R]) -> StepFunction[P, R]:
        # Annotations may name classes local to the defining function (a test, a factory):
        # resolve them in the namespace of the code that applied the decorator.
        caller_locals = sys._getframe(1).f_locals
        if pure and inspect.iscoroutinefunction(handler):
            # A pure step runs inside the commit that records it, synchronously.
            raise PluginError(
                f"step type {name!r} is pure, so its handler must be a plain function "
                "(def), not async def: it runs inside the commit that records it"
            )
        not_a_generator(name, "the handler", handler)
        plain = cast(Handler, handler)  # (input, ctx): _models_of checks what mypy may not
        if resume is not None:
            _check_resume(name, resume)
        input_model, output_model = _models_of(name, plain, caller_locals, resume)
        return StepFunction(
            name=name,
            handler=plain,
            input_model=input_model,
            output_model=output_model,
            pure=pure,
            description=description or (inspect.getdoc(handler) or "").split("\n")[0],
            kind=kind,
            output_is_input=output_is_input,
            output_schema_in_input=output_schema_in_input,
            sets_variable=sets_variable,
            secret_fields=frozenset(secret_fields),
            resume=resume,
        )

    return wrap


def _check_resume(name: str, resume: Any) -> None:
    """PluginError unless ``resume`` is a function of (input, ctx, state): found out when
    the step type is declared, not when a parked step first wakes."""
    try:
        inspect.signature(resume)
    except (TypeError, ValueError):  # not callable, or no signature to read
        raise PluginError(
            f"step type {name!r}: resume must be a function of (input, ctx, state), "
            f"not {type(resume).__name__}"
        ) from None
    _positional(name, resume, "resume", ("input", "ctx", "state"))
    not_a_generator(name, "resume", resume)


def not_a_generator(name: str, what: str, fn: Any) -> None:
    """PluginError for a function that yields. The engine awaits one value: an async
    generator is no awaitable, so every run failed ("has no JSON form"); a plain one ran
    in a thread only to be made, and its body then ran on the event loop, iterated
    into a list as the output (blocking every other step meanwhile). Annotated, either
    was refused as an output that is not a model, saying nothing of the yield."""
    if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
        kind = "an async generator" if inspect.isasyncgenfunction(fn) else "a generator"
        raise PluginError(
            f"step type {name!r}: {what} is {kind} (it yields); a step gives "
            "one output, so return a value instead of yielding"
        )


#: How a parameter the engine passes by position cannot take it.
_NOT_POSITIONAL = {
    inspect.Parameter.KEYWORD_ONLY: "keyword-only (it follows a '*')",
    inspect.Parameter.VAR_POSITIONAL: "a '*' parameter",
    inspect.Parameter.VAR_KEYWORD: "a '**' parameter",
}


def _positional(name: str, fn: Any, what: str, expected: tuple[str, ...]) -> list[str]:
    """The names of ``fn``'s parameters, or PluginError unless the engine can pass it
    ``expected`` by position, as it does: one keyword-only (``def h(data, *, ctx)``) was
    accepted, then every run failed with a TypeError, retried under the policy."""
    params = list(inspect.signature(fn).parameters.values())
    names = [p.name for p in params]
    shape = ", ".join(expected)
    if len(params) != len(expected):
        raise PluginError(f"step type {name!r}: {what} must take ({shape}), it takes {names}")
    for param in params:
        if param.kind in _NOT_POSITIONAL:
            raise PluginError(
                f"step type {name!r}: {what}'s parameter {param.name!r} is "
                f"{_NOT_POSITIONAL[param.kind]}, but the engine passes ({shape}) by position"
            )
    return names


def _hints(name: str, fn: Any, localns: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return get_type_hints(fn, localns=dict(localns))
    except Exception as exc:  # an unresolvable annotation is a plugin bug worth naming
        raise PluginError(f"step type {name!r}: cannot read annotations: {exc}") from exc


def _models_of(
    name: str, handler: Handler, localns: Mapping[str, Any], resume: Resume | None = None
) -> tuple[type[BaseModel], type[BaseModel] | None]:
    hints = _hints(name, handler, localns)
    params = _positional(name, handler, "the handler", ("input", "ctx"))
    input_model = hints.get(params[0])
    if not (isinstance(input_model, type) and issubclass(input_model, BaseModel)):
        raise PluginError(f"step type {name!r}: annotate the first parameter with a pydantic model")
    if input_model is BaseModel:  # pydantic refuses to build one: every load would fail
        raise PluginError(
            f"step type {name!r}: annotate the first parameter with a model of your own (a "
            "subclass of BaseModel with the input's fields, none for no input), not "
            "BaseModel itself"
        )
    output = _output_of(name, "the handler", hints.get("return", Any))
    if resume is not None:
        # A handler that only suspends (``-> Suspend``) leaves the output to its resume.
        resumed = _output_of(name, "resume", _hints(name, resume, localns).get("return", Any))
        if output is _ONLY_SUSPENDS:
            output = resumed
        elif isinstance(output, type) and isinstance(resumed, type) and resumed is not output:
            raise PluginError(
                f"step type {name!r}: the handler returns {_shown(output)} but resume returns "
                f"{_shown(resumed)}; a step has one output, so annotate both the same"
            )
    return input_model, output if isinstance(output, type) else None


#: A return annotation that is ``Suspend`` alone: it says nothing of the output.
_ONLY_SUSPENDS = object()
#: Classes whose values are JSON as they are (or as pydantic converts them): free-form.
_FREE_FORM = (
    collections.abc.Mapping,
    collections.abc.Sequence,
    collections.abc.Set,
    int,
    float,
    type(None),
)


def _output_of(name: str, what: str, annotation: Any) -> Any:
    """The output model a return annotation names (``Out``, ``Out | Suspend``), None for
    free-form output (``dict[str, Any]``, ``Any``, ``Out | None``), or _ONLY_SUSPENDS.
    PluginError for a class that is not a pydantic model nor a JSON one (a plain class,
    a dataclass, a TypedDict): its output was taken as free-form, so it was stored
    unchecked and references to its fields were never checked."""
    members = [m for m in _members(annotation) if m is not Suspend]
    if not members:
        return _ONLY_SUSPENDS
    for member in members:
        kind = get_origin(member) or member
        if kind is Any or kind is object or not isinstance(kind, type):
            continue
        if issubclass(kind, BaseModel):
            continue
        if issubclass(kind, _FREE_FORM) and kind.__module__ in _JSON_MODULES:
            continue
        raise PluginError(
            f"step type {name!r}: {what} returns {_shown(member)}, which is not a pydantic "
            "model, so its fields would be neither checked nor known to references: make "
            f"it a pydantic BaseModel, or annotate {what} -> dict[str, Any] (or Any) for "
            "free-form output"
        )
    only = members[0] if len(members) == 1 else None  # a Union of several is free-form
    return only if isinstance(only, type) and issubclass(only, BaseModel) else None


#: Where the free-form classes come from (a TypedDict or a NamedTuple of the plugin's own
#: is a dict or a tuple too, and is refused as a class that is not a model).
_JSON_MODULES = frozenset({"builtins", "collections", "collections.abc", "typing"})


def _members(annotation: Any) -> list[Any]:
    """A Union's members (nested ones too), Annotated's type; else the annotation."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [m for arg in get_args(annotation) for m in _members(arg)]
    if origin is collections.abc.Awaitable or origin is collections.abc.Coroutine:
        return _members(get_args(annotation)[-1])  # a plain def's awaitable is awaited
    return [annotation]


def _shown(annotation: Any) -> str:
    if annotation is _ONLY_SUSPENDS:
        return "Suspend"
    return getattr(annotation, "__name__", None) or str(annotation)
