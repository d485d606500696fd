"""flowledger: a durable, declarative workflow engine.

The public API is what this module exports; everything else is internal and may change.
"""

from flowledger.definition.compiled import CompiledWorkflow
from flowledger.errors import (
    DefinitionError,
    FlowledgerError,
    InputError,
    NotFoundError,
    PluginError,
    Problem,
    StepError,
    StorageError,
    TemplateError,
)
from flowledger.runtime.engine import Engine
from flowledger.runtime.status import ExecutionStatus, StepStatus
from flowledger.steps.base import StepContext, StepType, Suspend, step_type
from flowledger.steps.registry import StepRegistry

__version__ = "0.1.0"

__all__ = [
    "CompiledWorkflow",
    "DefinitionError",
    "Engine",
    "ExecutionStatus",
    "FlowledgerError",
    "InputError",
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
    "__version__",
    "step_type",
]
