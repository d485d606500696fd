"""flowledger: a durable, declarative workflow engine.

The public API is what this module exports (and ``flowledger.app``, the application
layer the CLI and the HTTP API call); everything else is internal and may change.
tests/app/test_exports.py pins both lists.
"""

from typing import TYPE_CHECKING

from flowledger.lazy import lazy_exports

if TYPE_CHECKING:
    from flowledger.definition.compiled import CompiledWorkflow
    from flowledger.definition.jobs import load_job_file
    from flowledger.errors import (
        ConflictError,
        DefinitionError,
        EngineClosedError,
        EngineLoopError,
        FlowledgerError,
        ForbiddenError,
        HeldElsewhereError,
        InputError,
        InvalidInputError,
        LeaseLostError,
        NotFoundError,
        PluginError,
        Problem,
        StepError,
        StorageError,
        TemplateError,
    )
    from flowledger.runtime.engine import Engine
    from flowledger.runtime.job_runs import JobRuns
    from flowledger.runtime.status import ExecutionStatus, StepStatus
    from flowledger.steps.base import StepContext, StepType, Suspend, step_type
    from flowledger.steps.registry import StepRegistry
    from flowledger.storage.base import ExecutionQuery
    from flowledger.types import (
        EventDocument,
        ExecutionDocument,
        ExecutionStatusDocument,
        PendingInput,
        StepDocument,
    )
    from flowledger.worker.entity_dispatch import EntityDispatcher
    from flowledger.worker.worker import Worker, WorkerOptions

__version__ = "0.1.0"

#: Where each export lives: imported on first use, so ``import flowledger`` (and the CLI's
#: ``--version``) stays cheap; SQLAlchemy and friends load only when the engine is used.
_EXPORTS = {
    "CompiledWorkflow": "flowledger.definition.compiled",
    "load_job_file": "flowledger.definition.jobs",
    **dict.fromkeys(
        [
            "ConflictError",
            "DefinitionError",
            "EngineClosedError",
            "EngineLoopError",
            "FlowledgerError",
            "ForbiddenError",
            "HeldElsewhereError",
            "InputError",
            "InvalidInputError",
            "LeaseLostError",
            "NotFoundError",
            "PluginError",
            "Problem",
            "StepError",
            "StorageError",
            "TemplateError",
        ],
        "flowledger.errors",
    ),
    "Engine": "flowledger.runtime.engine",
    "JobRuns": "flowledger.runtime.job_runs",
    "ExecutionStatus": "flowledger.runtime.status",
    "StepStatus": "flowledger.runtime.status",
    **dict.fromkeys(["StepContext", "StepType", "Suspend", "step_type"], "flowledger.steps.base"),
    "StepRegistry": "flowledger.steps.registry",
    "ExecutionQuery": "flowledger.storage.base",
    # The documents the Engine answers (SPEC §4), to annotate code that reads them.
    **dict.fromkeys(
        [
            "EventDocument",
            "ExecutionDocument",
            "ExecutionStatusDocument",
            "PendingInput",
            "StepDocument",
        ],
        "flowledger.types",
    ),
    "EntityDispatcher": "flowledger.worker.entity_dispatch",
    "Worker": "flowledger.worker.worker",
    "WorkerOptions": "flowledger.worker.worker",
}


__getattr__ = lazy_exports("flowledger", _EXPORTS, globals())


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
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
