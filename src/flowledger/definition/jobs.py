"""Job-run files (SPEC §7): a name, and workflows to run in order, each with its input.

Only the file's own shape is checked here; finding each workflow and checking its
input against the workflow's input_schema needs a database (runtime/job_runs.py),
which reports its problems through :meth:`JobFile.problem` with the same positions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from flowledger.definition.models import WORKFLOW_NAME_PATTERN, WORKFLOW_NAME_RULE
from flowledger.definition.source import SourceDocument, parse_document, read_document
from flowledger.errors import (
    DefinitionError,
    Path,
    Problem,
    field_message,
    format_path,
    unknown_field,
)
from flowledger.unions import plain_errors

#: More than this many workflows in one job run is a mistake, not a job.
MAX_JOB_WORKFLOWS = 1000


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobItemSpec(_Frozen):
    #: The name of a pushed workflow, or (in a job file a local user runs) a definition
    #: file, relative to the job file's folder, then the current folder.
    workflow: str = Field(min_length=1, max_length=1000)
    input: dict[str, Any] = Field(default_factory=dict)


class JobSpec(_Frozen):
    name: str = Field(pattern=WORKFLOW_NAME_PATTERN, max_length=128)
    description: str | None = None
    continue_on_failure: StrictBool = False
    workflows: list[JobItemSpec] = Field(min_length=1, max_length=MAX_JOB_WORKFLOWS)


@dataclass(frozen=True)
class JobFile:
    """A checked job-run file, with the positions of its values for later problems."""

    spec: JobSpec
    source: SourceDocument
    #: Where relative workflow paths are looked for first (None: the current folder only).
    folder: FilePath | None
    #: Whether its workflows may name definition files on this machine. Only a local
    #: user's job file may: a document a service received names pushed workflows only
    #: (else a caller could run, and read through the errors, any file the server sees).
    files: bool = False

    def problem(self, message: str, path: Path) -> Problem:
        """A problem located at ``path`` of this file, its message prefixed with the path."""
        line, column = self.source.position(path) or (None, None)
        where = format_path(path)
        return Problem(f"{where}: {message}" if where else message, self.source.file, line, column)


def load_job_file(path: str | os.PathLike[str]) -> JobFile:
    """Read and check a job-run file (raises DefinitionError with file:line:col); its
    workflows may name definition files, as a local user's job file may."""
    return _check(read_document(path), FilePath(path).parent, files=True)


def parse_job_text(
    text: str | bytes,
    file: str = "<string>",
    folder: FilePath | None = None,
    *,
    files: bool = False,
) -> JobFile:
    """Check a job-run document given as text (an API body, a test); its workflows are
    pushed workflows' names unless ``files`` (a local caller's document)."""
    return _check(parse_document(text, file), folder, files=files)


def _check(source: SourceDocument, folder: FilePath | None, *, files: bool) -> JobFile:
    if not isinstance(source.data, Mapping):
        problem = Problem(
            "a job-run file must be a mapping with a name and a list of workflows",
            source.file,
            *(source.position(()) or (None, None)),
        )
        raise DefinitionError([problem])
    try:
        spec = JobSpec.model_validate(source.data)
    except ValidationError as exc:
        problems = [_problem(source, error) for error in plain_errors(exc.errors())]
        raise DefinitionError(
            sorted(problems, key=lambda p: (p.line or 0, p.column or 0))
        ) from None
    return JobFile(spec, source, folder, files)


def _problem(source: SourceDocument, error: Mapping[str, Any]) -> Problem:
    loc: Path = tuple(error.get("loc", ()))
    kind = error.get("type")
    where = format_path(loc[:-1])  # the mapping the field belongs in
    if kind == "extra_forbidden":
        message = unknown_field(loc[-1], _fields(loc))
    elif kind == "missing":
        message = f"'{loc[-1]}' is required"
        if loc == ("workflows",):
            message += ": list the workflows to run, e.g. [{workflow: flows/import.yaml}]"
    elif kind == "string_pattern_mismatch" and loc == ("name",):
        where = "name"
        message = WORKFLOW_NAME_RULE
    elif kind == "too_short" and loc == ("workflows",):
        where, message = "workflows", "list at least one workflow to run"
    else:
        where = format_path(loc)
        message = field_message(error)
    position = source.position(loc, key=kind == "extra_forbidden")
    line, column = position or (None, None)
    return Problem(f"{where}: {message}" if where else message, source.file, line, column, path=loc)


def _fields(loc: Path) -> list[str]:
    model: type[BaseModel] = JobItemSpec if "workflows" in loc[:-1] else JobSpec
    return list(model.model_fields)
