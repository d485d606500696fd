"""The application layer: every operation the faces offer, once.

One class per resource (``App.executions``, ``.workflows``, ``.job_runs``,
``.entities``, ``.artifacts``, ``.tokens``, ``.hooks``, ``.subscriptions``); each
operation takes one request model and returns a typed document or a :class:`Page`.
Errors are flowledger's: :class:`NotFoundError`,
:class:`ConflictError` (:class:`HeldElsewhereError`), :class:`InvalidInputError` with its
``field_path``, :class:`ForbiddenError`, plus the ``DefinitionError`` and ``InputError``
the runtime raises. Package arrows: definition → storage → runtime → app → faces.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowledger.app.application import App, upgrade_database
    from flowledger.app.artifacts import Artifacts
    from flowledger.app.changes import ChangeHub
    from flowledger.app.cursors import CursorCodec
    from flowledger.app.entities import Entities
    from flowledger.app.executions import Adopted, Executions, Retried
    from flowledger.app.hooks import HookReceipt, Hooks, ReceiveHook
    from flowledger.app.inputs import (
        json_object,
        parse_json,
        parse_json_object,
        read_json_file,
        read_schema_file,
    )
    from flowledger.app.job_runs import JobRunsApp
    from flowledger.app.models import (
        CancelExecution,
        CancelJobRun,
        CreateEntity,
        CreateEntityType,
        CreateJobRun,
        CreateWorkflowRun,
        DownloadArtifacts,
        DriveJobRun,
        EntityRef,
        FollowAllEvents,
        FollowEvents,
        GetArtifact,
        GetExecution,
        GetJobRun,
        GetWorkflow,
        GetWorkflowRun,
        GetWorkflowVersion,
        ListArtifacts,
        ListEntities,
        ListEntityTypes,
        ListEvents,
        ListExecutions,
        ListJobRuns,
        ListStates,
        ListWorkflowRuns,
        ListWorkflows,
        LoadWorkflow,
        PendingInputs,
        PushWorkflows,
        Request,
        RerunExecution,
        ResolveId,
        RetryExecution,
        RunExecution,
        SeedStatus,
        StartExecution,
        SubmitInput,
        UpdateEntity,
        ValidateWorkflow,
        WorkflowText,
    )
    from flowledger.app.results import (
        ArtifactDocument,
        CreatedEntityType,
        EntityDocument,
        EntityPageResult,
        EntityTypeDocument,
        JobRunDocument,
        JobRunItem,
        Page,
        PushedWorkflow,
        StageDocument,
        TriggerDocument,
        WorkflowDetail,
        WorkflowInstanceState,
        WorkflowRunDocument,
        WorkflowSummary,
        WorkflowVersionDocument,
    )
    from flowledger.app.seed import Seed
    from flowledger.app.slots import Slots
    from flowledger.app.streams import EventStreams
    from flowledger.app.subscriptions import (
        CreatedSubscription,
        CreateSubscription,
        DeleteSubscription,
        DeliveryDocument,
        GetSubscription,
        ListDeliveries,
        ListSubscriptions,
        SubscriptionDocument,
        Subscriptions,
    )
    from flowledger.app.tokens import (
        ROLES,
        Authenticate,
        Caller,
        CreatedToken,
        CreateToken,
        ListTokens,
        RevokeToken,
        Role,
        TokenDocument,
        Tokens,
    )
    from flowledger.app.workflows import Workflows
    from flowledger.errors import (
        ConflictError,
        ForbiddenError,
        HeldElsewhereError,
        InvalidInputError,
        NotFoundError,
    )
    from flowledger.types import EventDocument, ExecutionDocument, PendingInput, StepDocument

#: Where each export lives, imported on first use: a face that needs one resource (the
#: CLI's ``run`` needs executions and workflows) does not load the models and services
#: of all the others.
_EXPORTS = {
    **dict.fromkeys(
        ["App", "upgrade_database"],
        "flowledger.app.application",
    ),
    "Artifacts": "flowledger.app.artifacts",
    "ChangeHub": "flowledger.app.changes",
    "CursorCodec": "flowledger.app.cursors",
    "Entities": "flowledger.app.entities",
    **dict.fromkeys(
        ["Adopted", "Executions", "Retried"],
        "flowledger.app.executions",
    ),
    **dict.fromkeys(
        ["HookReceipt", "Hooks", "ReceiveHook"],
        "flowledger.app.hooks",
    ),
    **dict.fromkeys(
        ["json_object", "parse_json", "parse_json_object", "read_json_file", "read_schema_file"],
        "flowledger.app.inputs",
    ),
    "JobRunsApp": "flowledger.app.job_runs",
    **dict.fromkeys(
        [
            "CancelExecution",
            "CancelJobRun",
            "CreateEntity",
            "CreateEntityType",
            "CreateJobRun",
            "CreateWorkflowRun",
            "DownloadArtifacts",
            "DriveJobRun",
            "EntityRef",
            "FollowAllEvents",
            "FollowEvents",
            "GetArtifact",
            "GetExecution",
            "GetJobRun",
            "GetWorkflow",
            "GetWorkflowRun",
            "GetWorkflowVersion",
            "ListArtifacts",
            "ListEntities",
            "ListEntityTypes",
            "ListEvents",
            "ListExecutions",
            "ListJobRuns",
            "ListStates",
            "ListWorkflowRuns",
            "ListWorkflows",
            "LoadWorkflow",
            "PendingInputs",
            "PushWorkflows",
            "Request",
            "RerunExecution",
            "ResolveId",
            "RetryExecution",
            "RunExecution",
            "SeedStatus",
            "StartExecution",
            "SubmitInput",
            "UpdateEntity",
            "ValidateWorkflow",
            "WorkflowText",
        ],
        "flowledger.app.models",
    ),
    **dict.fromkeys(
        [
            "ArtifactDocument",
            "CreatedEntityType",
            "EntityDocument",
            "EntityPageResult",
            "EntityTypeDocument",
            "JobRunDocument",
            "JobRunItem",
            "Page",
            "PushedWorkflow",
            "StageDocument",
            "TriggerDocument",
            "WorkflowDetail",
            "WorkflowInstanceState",
            "WorkflowRunDocument",
            "WorkflowSummary",
            "WorkflowVersionDocument",
        ],
        "flowledger.app.results",
    ),
    "Seed": "flowledger.app.seed",
    "Slots": "flowledger.app.slots",
    "EventStreams": "flowledger.app.streams",
    **dict.fromkeys(
        [
            "CreatedSubscription",
            "CreateSubscription",
            "DeleteSubscription",
            "DeliveryDocument",
            "GetSubscription",
            "ListDeliveries",
            "ListSubscriptions",
            "SubscriptionDocument",
            "Subscriptions",
        ],
        "flowledger.app.subscriptions",
    ),
    **dict.fromkeys(
        [
            "ROLES",
            "Authenticate",
            "Caller",
            "CreatedToken",
            "CreateToken",
            "ListTokens",
            "RevokeToken",
            "Role",
            "TokenDocument",
            "Tokens",
        ],
        "flowledger.app.tokens",
    ),
    "Workflows": "flowledger.app.workflows",
    **dict.fromkeys(
        [
            "ConflictError",
            "ForbiddenError",
            "HeldElsewhereError",
            "InvalidInputError",
            "NotFoundError",
        ],
        "flowledger.errors",
    ),
    **dict.fromkeys(
        ["EventDocument", "ExecutionDocument", "PendingInput", "StepDocument"],
        "flowledger.types",
    ),
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flowledger.app' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ROLES",
    "Adopted",
    "App",
    "ArtifactDocument",
    "Artifacts",
    "Authenticate",
    "Caller",
    "CancelExecution",
    "CancelJobRun",
    "ChangeHub",
    "ConflictError",
    "CreateEntity",
    "CreateEntityType",
    "CreateJobRun",
    "CreateSubscription",
    "CreateToken",
    "CreateWorkflowRun",
    "CreatedEntityType",
    "CreatedSubscription",
    "CreatedToken",
    "CursorCodec",
    "DeleteSubscription",
    "DeliveryDocument",
    "DownloadArtifacts",
    "DriveJobRun",
    "Entities",
    "EntityDocument",
    "EntityPageResult",
    "EntityRef",
    "EntityTypeDocument",
    "EventDocument",
    "EventStreams",
    "ExecutionDocument",
    "Executions",
    "FollowAllEvents",
    "FollowEvents",
    "ForbiddenError",
    "GetArtifact",
    "GetExecution",
    "GetJobRun",
    "GetSubscription",
    "GetWorkflow",
    "GetWorkflowRun",
    "GetWorkflowVersion",
    "HeldElsewhereError",
    "HookReceipt",
    "Hooks",
    "InvalidInputError",
    "JobRunDocument",
    "JobRunItem",
    "JobRunsApp",
    "ListArtifacts",
    "ListDeliveries",
    "ListEntities",
    "ListEntityTypes",
    "ListEvents",
    "ListExecutions",
    "ListJobRuns",
    "ListStates",
    "ListSubscriptions",
    "ListTokens",
    "ListWorkflowRuns",
    "ListWorkflows",
    "LoadWorkflow",
    "NotFoundError",
    "Page",
    "PendingInput",
    "PendingInputs",
    "PushWorkflows",
    "PushedWorkflow",
    "ReceiveHook",
    "Request",
    "RerunExecution",
    "ResolveId",
    "Retried",
    "RetryExecution",
    "RevokeToken",
    "Role",
    "RunExecution",
    "Seed",
    "SeedStatus",
    "Slots",
    "StageDocument",
    "StartExecution",
    "StepDocument",
    "SubmitInput",
    "SubscriptionDocument",
    "Subscriptions",
    "TokenDocument",
    "Tokens",
    "TriggerDocument",
    "UpdateEntity",
    "ValidateWorkflow",
    "WorkflowDetail",
    "WorkflowInstanceState",
    "WorkflowRunDocument",
    "WorkflowSummary",
    "WorkflowText",
    "WorkflowVersionDocument",
    "Workflows",
    "json_object",
    "parse_json",
    "parse_json_object",
    "read_json_file",
    "read_schema_file",
    "upgrade_database",
]
