"""The application layer's results: the documents it returns, typed (TypedDicts the HTTP
face uses as response models), and :class:`Page` for lists."""

from __future__ import annotations

from typing import Any, Generic, NotRequired, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema
from typing_extensions import TypedDict

from flowledger.app.models import SeedStatus
from flowledger.types import EventDocument, ExecutionDocument, ExecutionStatusName

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list, newest first; ``nextCursor`` fetches the next (None: the end)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    items: list[T]
    next_cursor: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"items": self.items, "nextCursor": self.next_cursor}


class ExecutionsPage(Page[ExecutionDocument]):
    """A page of executions that, when its request asked (``include_total``), carries how
    many its filters select in all, its pages together; ``total`` is absent otherwise, so
    the answer stays SPEC's ``{items, nextCursor}``."""

    # Absent, never null: SkipJsonSchema keeps null out of the OpenAPI document's type.
    total: int | SkipJsonSchema[None] = None

    def to_json(self) -> dict[str, Any]:
        found = super().to_json()
        if self.total is not None:
            found["total"] = self.total
        return found


class WorkflowRunDocument(TypedDict):
    """The seed's run, verbatim (app.seed)."""

    id: str
    workflowId: str
    jobRunId: str | None
    createdByUserId: str
    status: SeedStatus
    currentStateName: str | None
    createdAt: str
    updatedAt: str
    completedAt: str | None


class StageDocument(TypedDict):
    """A WorkflowInstanceState's stage: times in Unix epoch milliseconds."""

    name: str
    startedAt: int
    endedAt: int | None
    tasks: list[str]
    variables: dict[str, Any]


class WorkflowInstanceState(TypedDict):
    """The seed's WorkflowInstanceState record (app.seed)."""

    id: str
    workflowInstanceId: str
    workflowInstanceExecutionId: str
    workflowDefinitionId: str
    stage: StageDocument
    timestamp: int
    exception: bool


class TriggerDocument(TypedDict, total=False):
    """A trigger as its definition gives it (camelCase), plus when a schedule fires next."""

    type: str
    nextFireAt: str | None
    nextFireAtLocal: str
    #: A schedule's ticks that ``overlap: skip`` left unstarted since it (re)started, and
    #: the newest of them.
    skippedTicks: int
    lastSkippedTickAt: str | None


class WorkflowSummary(TypedDict):
    name: str
    version: int
    versionId: str
    pushedAt: str
    triggers: list[TriggerDocument]
    #: False while its triggers are disabled (``workflows disable``).
    enabled: bool
    disabledAt: str | None


class WorkflowSwitched(TypedDict):
    name: str
    enabled: bool
    #: False when it already was so.
    changed: bool


class WorkflowDeleted(TypedDict):
    name: str
    #: Executions of it not finished when it was deleted (only with ``force``): they
    #: run on, pinned to their version.
    unfinished: int
    #: Stored versions and executions stay (history); ``executions prune`` removes those.
    versionsKept: int


class BackfilledTick(TypedDict):
    triggerIndex: int
    scheduledAt: str
    executionId: str
    #: Started before (by the scheduler or an earlier backfill): not started again.
    duplicate: bool


class StepLogLine(TypedDict):
    id: int
    at: str
    stepExecutionId: str
    stepId: str
    attempt: int
    #: A loop body's line: the iteration of each loop around it (``{"each": 3}``), as
    #: its step events' ``detail.loop``; empty outside loops.
    loop: dict[str, int]
    level: str
    message: str


class StepLogPage(TypedDict):
    items: list[StepLogLine]
    #: The ``cursor`` of the next page; None when there is none for now.
    nextCursor: str | None


class EventPage(TypedDict):
    """One page of an execution's event history, oldest first."""

    items: list[EventDocument]
    #: The last event's ``seq`` as text, to page on after it; None when no event is left
    #: for now.
    nextCursor: str | None


class ArtifactsFolderInfo(TypedDict):
    path: str
    exists: bool
    files: int
    sizeBytes: int


class DatabaseInfo(TypedDict):
    #: The URL with its password hidden.
    url: str
    backend: str
    #: None for an in-memory database.
    sizeBytes: int | None
    artifacts: ArtifactsFolderInfo
    #: Rows per main table.
    tables: dict[str, int]


class PruneResult(TypedDict):
    dryRun: bool
    #: Executions ending before this were eligible.
    before: str
    #: Deleted (or, on a dry run, that would be).
    executions: int
    batches: int
    artifactFolders: int


class PushedWorkflow(TypedDict):
    name: str
    version: int
    versionId: str
    changed: bool
    triggers: list[TriggerDocument]
    #: What is valid but likely a mistake (an entity trigger on a type that does not
    #: exist yet), one line each: pushed all the same.
    warnings: list[str]


class WorkflowVersionDocument(TypedDict):
    id: str
    name: str
    version: int
    checksum: str
    createdAt: str
    live: bool
    document: NotRequired[Any]
    #: The definition as people wrote it: the text the version was first pushed (or run)
    #: from, comments and layout kept; for a version stored before that text was kept
    #: (migration 0010), its document written out as YAML.
    source: NotRequired[str]


class WorkflowDetail(TypedDict):
    name: str
    live: WorkflowSummary | None
    versions: list[WorkflowVersionDocument]


class JobRunItem(TypedDict):
    index: int
    workflowName: str
    workflowVersion: int
    input: Any
    executionId: str | None
    runtimeStatus: ExecutionStatusName | None
    #: The execution's error (``message``, ``stepId``, ``attempt``) when it failed.
    error: Any


class JobRunDocument(TypedDict):
    id: str
    name: str
    #: The execution statuses (runtime.job_state says what each means of a job run).
    status: ExecutionStatusName
    continueOnFailure: bool
    createdAt: str
    startedAt: str | None
    completedAt: str | None
    createdBy: str
    runs: list[JobRunItem]


class EntityTypeDocument(TypedDict):
    name: str
    schema: Any
    createdAt: str
    updatedAt: str


class CreatedEntityType(TypedDict):
    type: EntityTypeDocument
    created: bool


class EntityDocument(TypedDict):
    id: str
    entityType: str
    version: int
    payload: dict[str, Any]
    createdAt: str
    updatedAt: str


class EntityPageResult(TypedDict):
    """One page of entities: ``totalCount`` matches in all; ``nextCursor`` fetches the
    next page of a cursor listing (None: the last page, or an offset listing)."""

    items: list[EntityDocument]
    totalCount: int
    hasMore: bool
    nextCursor: str | None


class ArtifactDocument(TypedDict):
    id: str
    executionId: str
    stepExecutionId: str | None
    stepId: str | None
    name: str
    contentType: str
    size: int
    sha256: str
    kind: str
    createdAt: str
    path: NotRequired[str]
