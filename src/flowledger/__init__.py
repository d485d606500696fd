"""flowledger: a durable, declarative workflow engine.

The public API is what this module exports (and ``flowledger.app``, the application
layer the CLI and the HTTP API call); everything else is internal and may change.
tests/app/test_exports.py pins both lists.
"""

from flowledger.definition.compiled import CompiledWorkflow
from flowledger.definition.jobs import load_job_file
from flowledger.errors import (
    ConflictError,
    DefinitionError,
    FlowledgerError,
    ForbiddenError,
    InputError,
    InvalidInputError,
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
from flowledger.worker.worker import Worker, WorkerOptions

__version__ = "0.1.0"

__all__ = [
    "CompiledWorkflow",
    "ConflictError",
    "DefinitionError",
    "Engine",
    "ExecutionStatus",
    "FlowledgerError",
    "ForbiddenError",
    "InputError",
    "InvalidInputError",
    "JobRuns",
    "NotFoundError",
    "PluginError",
    "Problem",
    "StepContext",
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
