"""The public API is what these modules export: a change here is a change for users."""

from __future__ import annotations

import ast
from pathlib import Path

import flowledger
import flowledger.app

PUBLIC = [
    "CompiledWorkflow",
    "ConflictError",
    "DefinitionError",
    "Engine",
    "EngineClosedError",
    "EngineLoopError",
    "EntityDispatcher",
    "EventDocument",
    "ExecutionDocument",
    "ExecutionQuery",
    "ExecutionStatus",
    "ExecutionStatusDocument",
    "FlowledgerError",
    "ForbiddenError",
    "HeldElsewhereError",
    "InputError",
    "InvalidInputError",
    "JobRuns",
    "LeaseLostError",
    "NotFoundError",
    "PendingInput",
    "PluginError",
    "Problem",
    "StepContext",
    "StepDocument",
    "StepError",
    "StepRegistry",
    "StepStatus",
    "StepType",
    "StorageError",
    "Suspend",
    "TemplateError",
    "Worker",
    "WorkerOptions",
    "__version__",
    "load_job_file",
    "step_type",
]

APP = sorted(
    [
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
        "GetStepType",
        "GetSubscription",
        "GetWorkflow",
        "GetWorkflowRun",
        "GetWorkflowVersion",
        "HeldElsewhereError",
        "HookReceipt",
        "Hooks",
        "InvalidInputError",
        "InputFieldDocument",
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
        "ListStepTypes",
        "ListStepLogs",
        "ListSubscriptions",
        "ListTokens",
        "ListWorkflowRuns",
        "ListWorkflows",
        "LoadWorkflow",
        "NotFoundError",
        "Page",
        "PendingInput",
        "OutputFieldDocument",
        "PendingInputs",
        "PushWorkflows",
        "PushedWorkflow",
        "ROLES",
        "ReceiveHook",
        "Request",
        "RerunExecution",
        "ResolveId",
        "Retried",
        "RetryExecution",
        "RetryJobRun",
        "RevokeToken",
        "Role",
        "RunExecution",
        "Seed",
        "SeedStatus",
        "Slots",
        "StageDocument",
        "StepTypeDocument",
        "StepTypes",
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
        "database_locked",
        "driver_message",
        "json_object",
        "parse_json",
        "parse_json_object",
        "read_json_file",
        "read_schema_file",
        "schema_mismatch",
        "trouble_detail",
        "upgrade_database",
    ]
)


def test_flowledger_exports_are_pinned() -> None:
    assert sorted(flowledger.__all__) == sorted(PUBLIC)
    for name in flowledger.__all__:
        assert hasattr(flowledger, name), name


def test_app_exports_are_pinned() -> None:
    assert sorted(flowledger.app.__all__) == APP
    for name in flowledger.app.__all__:
        assert hasattr(flowledger.app, name), name


def test_the_cli_calls_the_app_not_storage_or_steps() -> None:
    cli = Path(flowledger.__file__).parent / "cli"
    for module in cli.glob("*.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            for name in names:
                assert not name.startswith(("flowledger.storage", "flowledger.steps")), (
                    f"{module.name} imports {name}"
                )


def test_the_app_does_not_import_a_face() -> None:
    app = Path(flowledger.app.__file__).parent
    for module in app.glob("*.py"):
        assert "flowledger.cli" not in module.read_text(), module.name
