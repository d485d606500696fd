"""The application layer's vocabulary: one request model per operation, typed documents.

Requests are pydantic models: a field added later never breaks a caller, and a bad
value is refused when the request is built, as an :class:`InvalidInputError` naming the
field (``limit``, ``input``) — never as a pydantic error. Requests accept the Python
names and the camelCase JSON names (``correlation_id`` or ``correlationId``), so the
HTTP face validates bodies and query strings with the same models
(:meth:`Request.from_json`).

Results (``app.results``, and the SPEC §4 documents in ``flowledger.types``) are JSON
documents typed as TypedDicts: the faces print or send them as they are (no conversion),
and the HTTP face can use them as response models.
Decision: TypedDicts rather than models for documents, because the runtime builds these
dicts already and re-validating every execution document would cost for nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from flowledger.app.input_filters import filter_texts, input_filter
from flowledger.app.inputs import MAX_INT64, parse_json
from flowledger.app.limits import check_fields_no_nul
from flowledger.config import MIN_RETENTION
from flowledger.definition.compiled import CompiledWorkflow
from flowledger.durations import duration_at_least
from flowledger.errors import InputError, InvalidInputError, Path, field_message, shown
from flowledger.jsonvalues import check_json_value, encodable_text
from flowledger.numbers import NumbersNotBooleans
from flowledger.runtime.status import ExecutionStatus
from flowledger.storage.input_match import InputMatch
from flowledger.types import PathSegment
from flowledger.unions import plain_errors

T = TypeVar("T")
_DEPTH: ContextVar[int] = ContextVar("request_depth", default=0)

MAX_PAGE = 1000


def invalid(exc: ValidationError, model: type[BaseModel] | None = None) -> InvalidInputError:
    """A pydantic error as ours: every problem with its field path, the first as message.
    Given the ``model``, its fields are named as JSON names them (``correlationId``,
    ``from``), whatever name the face filled them by."""
    problems: list[tuple[Path, str]] = []
    for item in plain_errors(exc.errors()):
        loc = tuple(item["loc"])
        problems.append((_json_names(model, loc) if model else loc, field_message(item)))
    path, message = problems[0] if problems else ((), "the request is invalid")
    return InvalidInputError(message, path, problems=problems)


def _json_names(model: type[BaseModel], loc: Path) -> Path:
    """``loc`` with each field of ``model`` (and of the requests nested in it) spelled by
    its alias; what follows a plain value (the keys of an ``input``) stays as sent."""
    named: list[PathSegment] = []
    current: Any = model
    for index, segment in enumerate(loc):
        fields = getattr(current, "model_fields", None)
        field = fields.get(segment) if isinstance(fields, dict) else None
        if field is None:
            return (*named, *loc[index:])
        named.append(field.alias or segment)
        current = field.annotation
    return tuple(named)


class _AsItIs:
    """A compiled workflow is taken as it is, checked by its type only: otherwise pydantic
    builds a schema of the whole dataclass tree under it, 10 ms of the first start or
    run of every command, to check what the definition compiler already checked."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.is_instance_schema(CompiledWorkflow)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"description": "a compiled workflow (Python callers only)"}


#: A workflow named (a file, a pushed workflow's name) or compiled already.
WorkflowArg = str | Annotated[CompiledWorkflow, _AsItIs]


class Request(NumbersNotBooleans):
    """Base of every request: frozen, no unknown fields, errors as InvalidInputError."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        arbitrary_types_allowed=True,
        # Built on first use: a command uses one or two of these ~50 models, and building
        # them all was a tenth of `flowledger run`'s cold start.
        defer_build=True,
    )

    def __init__(self, **data: Any) -> None:
        # pydantic builds nested requests through this __init__ too: only the outermost
        # turns the error into ours, so the path runs from the top (texts[1].text).
        depth = _DEPTH.get()
        token = _DEPTH.set(depth + 1)
        try:
            super().__init__(**data)
        except ValidationError as exc:
            if depth:
                raise
            raise invalid(exc, type(self)) from None
        finally:
            _DEPTH.reset(token)
        if not depth:
            check_fields_no_nul(self)

    @classmethod
    def from_json(cls: type[RequestT], data: Mapping[str, Any]) -> RequestT:
        """Build the request from a JSON object (camelCase names), e.g. an HTTP body."""
        if not isinstance(data, Mapping):
            raise InvalidInputError("the request must be a JSON object")
        return cls(**dict(data))


RequestT = TypeVar("RequestT", bound=Request)

#: The longest id (or prefix of one) a request takes.
MAX_ID = 200
Id = Field(min_length=1, max_length=MAX_ID)


def _json_object(value: Any) -> Any:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("the input must be a JSON object")
    return value


def _version_number(value: Any) -> Any:
    """A stored version's number, or ``"latest"`` (the pushed version, as when none is
    given). Not lax: ``"1"`` was taken as 1 by the API's start (tour 25 L6) while every
    other field of its body is held to its JSON type."""
    if value == "latest" and isinstance(value, str):
        return None
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ValueError(
        'must be a version number (an integer) or "latest" (the pushed version), '
        f"not {shown(value)}"
    )


#: A client's key for a start (HTTP ``Idempotency-Key``, ``start --idempotency-key``): the
#: same key again answers what it started instead of starting another. Printable ASCII: an
#: HTTP header reads other bytes as Latin-1, so a key with an ``é`` sent by the API and by
#: the CLI would be two keys.
def _printable_ascii(value: str | None) -> str | None:
    # In words: a pattern's refusal showed the regex, ^[\x20-\x7e]+$, to people.
    for char in value or "":
        if not " " <= char <= "~":
            raise ValueError(
                "may hold only printable ASCII characters (letters, digits, punctuation "
                f"and spaces); {shown(char)} is not one"
            )
    return value


IdempotencyKey = Annotated[
    str | None,
    Field(default=None, min_length=1, max_length=160),
    AfterValidator(_printable_ascii),
]


# -- executions ---------------------------------------------------------------------------


class StartExecution(Request):
    """Start a workflow: a compiled one, a definition file, or a pushed workflow's name
    (its live version, or ``version``). ``start`` only enqueues and wakes the workers;
    ``hold`` leases it to this process instead (the caller then drives it)."""

    workflow: WorkflowArg
    input: dict[str, Any] = Field(default_factory=dict)
    version: int | None = Field(default=None, ge=1, le=MAX_INT64)
    correlation_id: str | None = Field(default=None, max_length=200)
    created_by: str = "python"
    hold: bool = False
    #: ``workflow`` may name a definition file on this machine (the CLI's ``start
    #: FILE_OR_NAME``). Off by default: a name a caller sent is only ever a pushed
    #: workflow's, and no file is read or looked at for it.
    allow_file: bool = False
    #: The same key again answers the execution it started (with another input or
    #: correlation id: ConflictError).
    idempotency_key: IdempotencyKey = None

    _check_input = field_validator("input", mode="before")(_json_object)
    _check_version = field_validator("version", mode="before")(_version_number)

    @field_validator("workflow")
    @classmethod
    def _named(cls, value: str | CompiledWorkflow) -> str | CompiledWorkflow:
        if isinstance(value, str) and not value.strip():
            raise ValueError("name a workflow: a definition file or a pushed workflow's name")
        return value

    @model_validator(mode="after")
    def _key_for_the_workers(self) -> StartExecution:
        if self.hold and self.idempotency_key is not None:
            raise ValueError(
                "an idempotency key is for a start the workers run; a held start is "
                "driven by its caller, who has its id already"
            )
        return self


class RunExecution(Request):
    """Start a workflow and run it to its end in this process (``flowledger run``).
    With ``finish_abandoned``, executions of the same workflow and creator that a stopped
    run left unfinished are finished first; with ``resume_same`` too, the one of them a
    run of this same workflow version, input and correlation id left is carried on as
    this run's execution, and none is started (a rerun of a killed run does the work once).
    "Same input": the input as validated (defaults filled in), with the values of the
    secrets the workflow declares redacted, against the one stored (redacted likewise),
    as JSON, key order aside."""

    workflow: WorkflowArg
    input: dict[str, Any] = Field(default_factory=dict)
    correlation_id: str | None = Field(default=None, max_length=200)
    created_by: str = "python"
    finish_abandoned: bool = False
    #: Off (``run --new``): a new execution starts after the stopped runs' are finished.
    resume_same: bool = True
    #: As StartExecution's: ``workflow`` may name a definition file on this machine.
    allow_file: bool = False

    _check_input = field_validator("input", mode="before")(_json_object)


def _checked_filter(text: str) -> str:
    input_filter(text)  # ValueError saying what is wrong with it
    return text


#: ``ListExecutions.input``: checked one by one, so an error names the nth.
InputFilters = Annotated[
    list[Annotated[str, AfterValidator(_checked_filter)]], BeforeValidator(filter_texts)
]


class ListExecutions(Request):
    """Executions newest first, one page at a time; ``cursor`` is a page's ``nextCursor``."""

    #: One status, or several (a list, or one text separated by commas): any of them.
    status: ExecutionStatus | list[ExecutionStatus] | None = None
    workflow: str | None = None
    correlation_id: str | None = None
    parent_id: str | None = None
    #: Only executions that no other started (no parent: what was started by a person, a
    #: trigger or a job run, not a sub-workflow's children).
    top_level: bool = False
    job_run_id: str | None = None
    created_by: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    #: Only executions whose input holds all of these: ``PATH=VALUE`` texts
    #: (``customer.id=7``; app.input_filters says how they read), or path → JSON value.
    input: InputFilters = Field(default_factory=list)
    limit: int = Field(default=20, ge=1, le=MAX_PAGE)
    cursor: str | None = None
    #: ``parent_id`` and ``job_run_id`` may be unique prefixes of ids, as people type them
    #: (NotFoundError when none or several match); a face for machines leaves it off.
    id_prefixes: bool = False
    #: The page also says how many executions the filters select in all (one more read).
    include_total: bool = False

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> Any:
        known = [s.value for s in ExecutionStatus]  # in the lifecycle's order, every time
        if isinstance(value, str) and "," in value:
            value = [part.strip() for part in value.split(",")]
        given = value if isinstance(value, list) else [] if value is None else [value]
        for one in given:
            if one not in known:
                raise ValueError(f"unknown status {shown(one)}; use one of {', '.join(known)}")
        if isinstance(value, list):
            unique = list(dict.fromkeys(value))
            return unique[0] if len(unique) == 1 else unique
        return value

    @field_validator("created_after", "created_before")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2026-11-22T10:00:00Z)")
        return value

    @model_validator(mode="after")
    def _one_level(self) -> ListExecutions:
        if self.top_level and self.parent_id:
            raise ValueError(
                "the children of a parent are not top-level: give a parent or top-level "
                "only, not both"
            )
        return self

    def filters(self) -> dict[str, Any]:
        """What the query selects, without paging (a cursor belongs to one of these)."""
        found = self.model_dump(
            mode="json",
            exclude={"limit", "cursor", "id_prefixes", "top_level", "include_total", "input"},
        )
        # Named only when asked: cursors sealed before they were filters still open.
        if self.top_level:
            found["top_level"] = True
        if self.input:
            found["input"] = list(self.input)
        return found

    def input_matches(self) -> tuple[InputMatch, ...]:
        """``input`` read (each text was checked when the request was built)."""
        return tuple(input_filter(text) for text in self.input)


MAX_WAIT = 60.0


class GetExecution(Request):
    id: str = Id
    #: Hold the request until the execution ends or waits for input, up to this long.
    wait: float = Field(default=0.0, ge=0.0, le=MAX_WAIT)
    #: Who waits (an API token's name): counts against its limit of concurrent waits.
    caller: str | None = None


#: The largest ``seq`` an event can have: ``events.seq`` is a 32-bit integer on PostgreSQL,
#: which refuses to compare it with a larger number (a 500).
MAX_SEQ = 2**31 - 1


def _past_the_last_seq(value: int) -> int:
    """A position past :data:`MAX_SEQ` as :data:`MAX_SEQ`: nothing comes after either.

    Decision: clamp rather than refuse. ``after`` is a position, not an event's id: a
    position after every possible event means "nothing after it", answered ``[]`` (as
    SQLite, whose integers are 64-bit, always answered); the API keeps accepting the
    64-bit range it documented, and every database answers the same."""
    return min(value, MAX_SEQ)


class ListEvents(Request):
    """One page of the history after ``after_seq``, oldest first: at most ``limit``
    events (``FLOWLEDGER_MAX_PAGE`` at most); page on with the page's ``nextCursor`` (the
    last one's ``seq``) as ``after_seq``. ``Executions.history`` reads every page. An
    ``after_seq`` past the largest seq stored anywhere is taken as that (no events)."""

    id: str = Id
    #: Said ``after`` in errors, as the API's query and the CLI's option name it.
    after_seq: int = Field(default=0, ge=0, le=MAX_INT64, alias="after")
    limit: int = Field(default=1000, ge=1, le=MAX_PAGE)

    _after = field_validator("after_seq")(_past_the_last_seq)


class FollowEvents(Request):
    """A live stream of one execution's events after ``after_seq`` (app.streams); an
    ``after_seq`` past the largest seq stored anywhere is taken as that, as in
    :class:`ListEvents`."""

    id: str = Id
    after_seq: int = Field(default=0, ge=0, le=MAX_INT64, alias="after")
    #: Who listens (an API token's name): counts against its limit of open streams.
    caller: str | None = None
    #: The hash of the listener's token (tokens.token_hash): the stream ends once it no
    #: longer authenticates (revoked), as the listener's next request would be refused.
    credential: str | None = Field(default=None, max_length=128)
    #: Its descendants' events too, children started later included (app.streams);
    #: ``after_seq`` applies to the execution's own events only.
    children: bool = False

    _after = field_validator("after_seq")(_past_the_last_seq)


class FollowAllEvents(Request):
    """A live tail of every execution's events, or of one workflow's (app.streams)."""

    workflow: str | None = Field(default=None, min_length=1, max_length=128)
    caller: str | None = None
    credential: str | None = Field(default=None, max_length=128)


class ListStepLogs(Request):
    """What step handlers logged (app.steplogs): lines after the line id ``after``, of
    the steps ``steps`` and of the attempts ``attempts`` (step execution ids) when given."""

    id: str = Id
    after: int = Field(default=0, ge=0, le=MAX_INT64)
    steps: list[str] = Field(default_factory=list)
    attempts: list[str] = Field(default_factory=list)
    limit: int = Field(default=1000, ge=1, le=MAX_PAGE)
    #: A page's ``nextCursor``: the page after it (wins over ``after``).
    cursor: str | None = None


class FollowStepLogs(Request):
    id: str = Id
    after: int = Field(default=0, ge=0, le=MAX_INT64)
    steps: list[str] = Field(default_factory=list)


class PruneExecutions(Request):
    """Delete finished executions that ended more than ``older_than`` ago (a duration
    such as ``30d``), only those in ``statuses`` when given (app.retention)."""

    older_than: timedelta
    statuses: list[ExecutionStatus] = Field(default_factory=list)
    dry_run: bool = False
    #: Executions deleted per transaction: each batch holds the write lock only briefly.
    batch_size: int = Field(default=100, ge=1, le=1000)

    @field_validator("older_than", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return duration_at_least(value, MIN_RETENTION)

    @field_validator("statuses")
    @classmethod
    def _finished(cls, value: list[ExecutionStatus]) -> list[ExecutionStatus]:
        for status in value:
            if not status.terminal:
                raise ValueError(
                    f"{status} executions are not finished and are never pruned; use "
                    "Completed, CompletedWithNoActionTaken, Failed or Cancelled"
                )
        return value


class PendingInputs(Request):
    id: str = Id


def _lone_surrogates_kept(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """A prefix holding a lone surrogate (a command's argument with an undecodable byte:
    ``\\udcff``) is kept, so that it is not found as any other id is (resolve_id), rather
    than refused as text pydantic cannot read."""
    try:
        return handler(value)
    except ValidationError:
        if isinstance(value, str) and 0 < len(value) <= MAX_ID and not encodable_text(value):
            return value
        raise


class ResolveId(Request):
    """A full id from a unique prefix of it (at least one character)."""

    prefix: Annotated[str, WrapValidator(_lone_surrogates_kept)] = Field(
        min_length=1, max_length=MAX_ID
    )


class _Control(Request):
    id: str = Id
    by: str = "python"
    #: Carry the execution on in this process until it ends or waits for people (what
    #: the CLI does); false leaves it to the workers (woken at once).
    settle: bool = False
    #: Without ``settle``: seconds to wait for the execution to act on what was sent
    #: (the HTTP API's answer is the state after the change); the answer then says
    #: ``pendingSignals`` when it has not yet.
    wait: float = Field(default=0.0, ge=0, le=60)


#: The most characters a cancel's reason may have (CancelExecution, CancelJobRun: every
#: face refuses a longer one alike). A reason is a sentence, yet it is copied many times:
#: into the execution's error and its ``execution.cancelled`` event, into the error and
#: ``step.cancelled`` event of each step it stops, and into the cancel sent to each child
#: (a loop of 1,000 children: a thousand copies), and shown on pages and in logs.
MAX_CANCEL_REASON = 1_000


class CancelExecution(_Control):
    reason: str = Field(default="cancelled on request", max_length=MAX_CANCEL_REASON)


class RetryExecution(_Control):
    pass


class RerunExecution(_Control):
    from_step: str = Field(min_length=1)
    version: Literal["pinned", "latest"] = "pinned"


class SubmitInput(_Control):
    step: str = Field(min_length=1)
    data: Any = None


# -- the seed's views (app.seed) -----------------------------------------------------------

SEED_STATUSES = (
    "PENDING",
    "IN_PROGRESS",
    "AWAITING_USER_INPUT",
    "COMPLETED",
    "COMPLETED_WITH_NO_ACTION_TAKEN",
    "FAILED",
    "CANCELLED",
)
SeedStatus = Literal[
    "PENDING",
    "IN_PROGRESS",
    "AWAITING_USER_INPUT",
    "COMPLETED",
    "COMPLETED_WITH_NO_ACTION_TAKEN",
    "FAILED",
    "CANCELLED",
]


class ListWorkflowRuns(Request):
    """The seed's runs newest first, one page at a time (a view over ListExecutions)."""

    workflow_id: str | None = Field(default=None, min_length=1, max_length=128)
    status: SeedStatus | None = None
    job_run_id: str | None = None
    limit: int = Field(default=20, ge=1, le=MAX_PAGE)
    cursor: str | None = None


class GetWorkflowRun(Request):
    id: str = Id


class CreateWorkflowRun(Request):
    """``{workflowId, input}``: start the pushed workflow of that name."""

    workflow_id: str = Field(min_length=1, max_length=128)
    input: dict[str, Any] | None = Field(default_factory=dict)
    created_by: str = "python"
    #: As a start's (StartExecution): the same key again answers the run it started.
    idempotency_key: IdempotencyKey = None

    _check_input = field_validator("input", mode="before")(_json_object)


class ListStates(Request):
    """An execution's WorkflowInstanceState records, oldest stage first: every one
    (neither ``limit`` nor ``cursor`` given: SPEC's answer), or one page of ``limit``
    (:data:`STATES_PAGE` when only a ``cursor`` is given); ``cursor`` is a page's
    ``nextCursor``."""

    id: str = Id
    limit: int | None = Field(default=None, ge=1, le=MAX_PAGE)
    cursor: str | None = None


#: A page of instance states when a cursor is given without a limit.
STATES_PAGE = 100


# -- workflows ----------------------------------------------------------------------------


class WorkflowText(Request):
    """A definition given as text (YAML or JSON); ``file`` names it in error messages."""

    text: str
    file: str = "<request>"


class PushWorkflows(Request):
    """Push definitions all or nothing: every one is checked before any is stored."""

    files: list[str] = Field(default_factory=list)
    texts: list[WorkflowText] = Field(default_factory=list)

    def model_post_init(self, context: Any) -> None:
        if not self.files and not self.texts:
            raise InvalidInputError("give at least one definition", ("files",))


class ListWorkflows(Request):
    """Pushed workflows: ``list`` gives them all by name, ``page`` one page newest first
    (first pushed); ``cursor`` is a page's ``nextCursor``."""

    limit: int = Field(default=20, ge=1, le=MAX_PAGE)
    cursor: str | None = None


class GetWorkflow(Request):
    name: str = Field(min_length=1, max_length=128)


class GetWorkflowVersion(Request):
    name: str = Field(min_length=1, max_length=128)
    version: int = Field(ge=1, le=MAX_INT64)


class LoadWorkflow(Request):
    """Compile the pushed version of a workflow by that name; with ``allow_file`` a
    definition file on this machine first."""

    workflow: str = Field(min_length=1)
    allow_file: bool = False


class ValidateWorkflow(Request):
    file: str = Field(min_length=1)
    #: Also look up the pushed workflows a job file names by name (needs the database).
    stored: bool = False


class SwitchWorkflow(Request):
    """Disable or enable a pushed workflow's triggers (schedules, webhooks, entity
    triggers). An enable skips the schedule ticks missed while disabled unless
    ``catch_up`` (then each schedule's own ``catch_up`` policy applies)."""

    name: str = Field(min_length=1, max_length=128)
    enabled: bool
    catch_up: bool = False


class DeleteWorkflow(Request):
    """Un-push a workflow: refused while executions of it are unfinished, unless ``force``."""

    name: str = Field(min_length=1, max_length=128)
    force: bool = False


class TriggerWorkflow(Request):
    """Start a pushed workflow now (``trigger.type`` is ``manual``), for the workers."""

    name: str = Field(min_length=1, max_length=128)
    input: dict[str, Any] = Field(default_factory=dict)
    version: int | None = Field(default=None, ge=1, le=MAX_INT64)
    created_by: str = "python"

    _check_input = field_validator("input", mode="before")(_json_object)
    _check_version = field_validator("version", mode="before")(_version_number)


#: Most ticks one backfill starts.
MAX_BACKFILL = 1000


class BackfillWorkflow(Request):
    """Start one execution per schedule tick in [``start``, ``end``] (each exactly once,
    whoever else starts ticks), with the schedule's trigger data."""

    name: str = Field(min_length=1, max_length=128)
    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")
    created_by: str = "python"

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2026-11-22T10:00:00Z)")
        return value

    def model_post_init(self, context: Any) -> None:
        if self.end < self.start:
            raise InvalidInputError("`to` is before `from`", ("to",))


# -- job runs -----------------------------------------------------------------------------


class CreateJobRun(Request):
    """Store a job run from a job-run file, or from its ``text`` (YAML or JSON); ``hold``
    leases it to this process."""

    file: str | None = Field(default=None, min_length=1)
    text: str | None = None
    created_by: str = "python"
    hold: bool = False
    #: The caller is a local user, who may name files on this machine (the CLI): the job
    #: file, and definition files as its workflows. Without it (a service face: the HTTP
    #: API) every workflow is a pushed workflow's name and no file is ever read.
    read_files: bool = False
    #: The same key again answers the job run it created instead of creating another
    #: (with another document: ConflictError).
    idempotency_key: IdempotencyKey = None

    def model_post_init(self, context: Any) -> None:
        if (self.file is None) == (self.text is None):
            raise InvalidInputError("give a job-run file or its text, one of them", ("file",))
        if self.file is not None and not self.read_files:
            raise InvalidInputError(
                "a job-run file is read only for a local caller (read_files); "
                "send the document as text, naming pushed workflows",
                ("file",),
            )
        if self.hold and self.idempotency_key is not None:
            raise InvalidInputError(
                "an idempotency key is for a job run the workers carry on; a held job run "
                "is driven by its caller, who has its id already",
                ("idempotencyKey",),
            )


class DriveJobRun(Request):
    id: str = Id


class GetJobRun(Request):
    id: str = Id


class ListJobRuns(Request):
    """Job runs newest first; ``cursor`` is a page's ``nextCursor``."""

    limit: int = Field(default=20, ge=1, le=MAX_PAGE)
    cursor: str | None = None


class CancelJobRun(Request):
    id: str = Id
    by: str = "python"
    reason: str = Field(default="job run cancelled on request", max_length=MAX_CANCEL_REASON)
    #: Carry the workflow's execution on in this process until the cancel lands (what the
    #: CLI does); false records the cancel and leaves it to its holder and the workers
    #: (woken at once), as CancelExecution does.
    settle: bool = False


class RetryJobRun(Request):
    """Resume a Failed job run: its failed workflows' executions are retried in place,
    and it goes on from there once they complete."""

    id: str = Id
    by: str = "python"


# -- entities -----------------------------------------------------------------------------


class CreateEntityType(Request):
    name: str = Field(min_length=1)
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")


class ListEntityTypes(Request):
    """Entity types: ``list_types`` gives them all by name, ``page_types`` one page newest
    first; ``cursor`` is a page's ``nextCursor``."""

    limit: int = Field(default=20, ge=1, le=MAX_PAGE)
    cursor: str | None = None


class CreateEntity(Request):
    entity_type: str = Field(min_length=1)
    payload: dict[str, Any]

    @field_validator("payload", mode="before")
    @classmethod
    def _object(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError('the payload must be a JSON object, e.g. {"Status": "New"}')
        return value


class UpdateEntity(CreateEntity):
    entity_type: str = ""
    id: str = Id


class EntityRef(Request):
    id: str = Id
    #: When given, an entity of another type is not found.
    entity_type: str | None = None


class ListEntities(Request):
    entity_type: str = Field(min_length=1)
    filter: dict[str, Any] = Field(default_factory=dict)
    order_by: list[str] = Field(default_factory=list)
    limit: int = Field(default=100, ge=1, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0, le=MAX_INT64)
    #: A page's ``nextCursor``: the next page (give no ``offset`` with it).
    cursor: str | None = None

    @field_validator("order_by")
    @classmethod
    def _order_by(cls, value: list[str]) -> list[str]:
        """Each name checked here, so a bad one is named as the request names it
        (``orderBy``), not as the entity store's Python API does (``order_by``)."""
        from flowledger.entities.service import parse_order

        for index, name in enumerate(value):
            try:
                parse_order(name)
            except InvalidInputError as exc:  # no ValueError: it keeps its own path
                raise InvalidInputError(exc.problems[0][1], ("orderBy", index)) from None
        try:
            parse_order(value)  # how many there are: each name passed above
        except InvalidInputError as exc:
            raise InvalidInputError(exc.problems[0][1], ("orderBy",)) from None
        return value

    @field_validator("filter", mode="before")
    @classmethod
    def _filter(cls, value: Any) -> Any:
        """The filter, or its JSON text (the API's ``?filter=``). An InvalidInputError
        raised here is no ValueError, so it leaves pydantic as it is: its field path names
        the filter's own field (``filter.Score``), not only ``filter``."""
        if isinstance(value, str) and value:
            try:
                value = parse_json(value, "filter")
            except InvalidInputError:
                raise  # a value JSON cannot hold, at its place (filter.Score)
            except InputError as exc:  # not JSON, or too large or deep: the text as a whole
                raise InvalidInputError(
                    "the text " + str(exc).removeprefix("filter "), ("filter",)
                ) from None
        if value is None or value == "":
            return {}
        if not isinstance(value, dict):
            raise ValueError("the filter must be a JSON object of field names and values")
        check_json_value(value, "filter", max_int=MAX_INT64)  # the database's 64-bit integers
        return value


# -- artifacts ----------------------------------------------------------------------------


class ListArtifacts(Request):
    """An execution's artifacts: ``list`` gives them all oldest first, ``page`` one page
    newest first; ``cursor`` is a page's ``nextCursor``."""

    execution_id: str = Id
    limit: int = Field(default=100, ge=1, le=MAX_PAGE)
    cursor: str | None = None


class GetArtifact(Request):
    id: str = Id


class DownloadArtifacts(Request):
    """Copy every artifact of an execution into ``folder`` (created if needed; existing
    files are never overwritten), each checksum verified."""

    execution_id: str = Id
    folder: str = Field(min_length=1)
