"""The one exception tree of flowledger.

Every error a user can cause carries enough to act on it: the file, line and
column, the step id and the field path, and a message that is a sentence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flowledger.types import FieldPath, PathSegment

#: Where a problem is in a document (see flowledger.types).
Path = FieldPath


def format_path(path: Sequence[PathSegment]) -> str:
    """Render a field path the way a user writes it: ``input.items[2].name``."""
    out = ""
    for segment in path:
        if isinstance(segment, int):
            out += f"[{segment}]"
        else:
            out += f".{segment}" if out else segment
    return out


#: The longest label a message may begin with (``schedule trigger: overlap: …``) that a
#: field path replaces; longer openings are sentences of their own, kept.
_LABEL = 24


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition, located precisely."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    step_id: str | None = None
    path: Path = field(default=())

    def format(self) -> str:
        """``FILE:LINE:COL: step 'id': field.path: message`` (parts that are unknown are
        left out; the field path is the step's own, ``input.url``, ``retry.max_attempts``)."""
        where = self.file or "<definition>"
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        step = f"step '{self.step_id}': " if self.step_id else ""
        return f"{where}: {step}{self.field_message()}"

    def field_message(self) -> str:
        """The message after the field path it is about, said once: a message that begins
        with part of its path (``retry: …``, ``method: …``) has that part replaced."""
        field = self.field()
        if not field:
            return self.message
        message = self.message
        parts = list(self.field_path())
        said = [format_path(parts[:k]) for k in range(len(parts), 0, -1)]
        said += [format_path(parts[k:]) for k in range(1, len(parts))]
        stripped = False
        for part in said:
            if part and message.startswith(part + ": "):
                message, stripped = message[len(part) + 2 :], True
                break
        first, last = str(parts[0]), str(parts[-1])
        if not stripped and len(parts) > 1 and field in message:
            return message  # it names its place itself: "… cannot be used in input.value"
        inner = message.find(f": {last}: ")
        if not stripped and 0 < inner <= _LABEL:  # "schedule trigger: overlap: must be …"
            return f"{field}: {message[inner + len(last) + 4 :]}"
        if not stripped and (message.startswith(f"'{first}'") or _names_place(message, parts)):
            return message  # it names its place itself: "retry has no effect on …"
        if len(parts) > 1 and message.startswith(f"{last} "):
            return f"{field}{message[len(last) :]}"  # "input.expression must be …"
        if len(parts) > 1 and message.startswith(f"'{last}' "):
            return f"{field}{message[len(last) + 2 :]}"  # "input.value is required"
        if f"'{last}'" in message:  # "unknown field 'aftr'; did you mean 'after'?"
            parent = format_path(parts[:-1])
            return f"{parent}: {message}" if parent else message
        return f"{field}: {message}"

    def field(self) -> str:
        return format_path(self.field_path())

    def field_path(self) -> Path:
        """The path inside the step the problem is about (the whole path when it is not
        in a step): what follows the last ``steps[i]``."""
        path = tuple(self.path)
        if self.step_id is None:
            return path
        for index in range(len(path) - 2, -1, -1):
            if path[index] == "steps" and isinstance(path[index + 1], int):
                return path[index + 2 :]
        return path


def _names_place(message: str, parts: Sequence[PathSegment]) -> bool:
    """Whether ``message`` opens with its own place: a part of its path then a space
    (``retry has no effect``), or the whole path and deeper (``input.value.url is …``).
    ``input.s is a string`` in ``input.expression`` opens with a read, not its place."""
    for k in range(len(parts), 0, -1):
        said = format_path(parts[:k])
        if message.startswith(said + " ") or (
            k == len(parts) and message.startswith((said + ".", said + "["))
        ):
            return True
    return False


class FlowledgerError(Exception):
    """Base of every error flowledger raises on purpose."""


class DefinitionError(FlowledgerError):
    """A workflow definition is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(p.format() for p in self.problems))


class MissingStepTypesError(DefinitionError):
    """A stored workflow names custom step types this process has not loaded (its
    plugins are elsewhere): it compiles here only with stand-ins, which never run.
    ``missing``: those types' names; ``workflow``: ``name vN``, the version's label."""

    def __init__(self, problems: Iterable[Problem], missing: Iterable[str], workflow: str) -> None:
        self.missing: tuple[str, ...] = tuple(missing)
        self.workflow = workflow
        super().__init__(problems)


class TemplateError(FlowledgerError):
    """A template could not be compiled or evaluated."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.message = message
        self.source = source
        super().__init__(message)


class TemplateSyntaxError(TemplateError):
    """The template text is not a valid expression template."""


class TemplateSecurityError(TemplateError):
    """The template tried something the sandbox forbids."""


class TemplateLimitError(TemplateError):
    """The template would exceed a resource budget (size, time, range)."""


class TemplateReferenceError(TemplateError):
    """A name or field the template reads does not exist at run time."""


class InputError(FlowledgerError):
    """Workflow input (trigger arguments) does not match the input schema."""


class InvalidInputError(InputError):
    """A request to the application layer is invalid; ``field_path`` names the field
    (``("input", "items", 2)``), empty when the request as a whole is wrong. Every
    problem found is in ``problems`` as ``(path, message)``; the message is the first."""

    def __init__(
        self,
        message: str,
        field_path: Sequence[PathSegment] = (),
        *,
        problems: Sequence[tuple[Path, str]] = (),
    ) -> None:
        self.field_path: Path = tuple(field_path)
        self.message = message
        self.problems: tuple[tuple[Path, str], ...] = tuple(problems) or (
            (self.field_path, message),
        )
        where = format_path(self.field_path)
        super().__init__(f"{where}: {message}" if where else message)

    def renamed(self, field: str, name: str) -> InvalidInputError:
        """This error with the request's field ``field`` called ``name``: what a face
        calls it where it took the value from (an HTTP header, ``Idempotency-Key``)."""

        def called(path: Path) -> Path:
            return (name, *path[1:]) if path[:1] == (field,) else path

        problems = [(called(path), message) for path, message in self.problems]
        return InvalidInputError(self.message, called(self.field_path), problems=problems)


def _least_wait(value: object) -> timedelta | None:
    """A StepError's ``retry_after`` as a wait, or None when it is no usable one (NaN,
    an infinity, a negative, a string, more than a day's worth of days): a bad hint must
    not hide the step's own message behind a ValueError."""
    if isinstance(value, timedelta):
        return value if value >= timedelta(0) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 0 <= value <= _MAX_WAIT_SECONDS:  # False for NaN too
        return None
    return timedelta(seconds=value)


#: Longer hints are no hints (a timedelta holds at most 999,999,999 days).
_MAX_WAIT_SECONDS = 365 * 24 * 3600


#: A failure's code (``timeout``, ``http.5xx``, ``RateLimited``): what a step's
#: ``retry.on`` lists and a template reads as ``steps.X.error.code``.
ERROR_CODE_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
_ERROR_CODE = re.compile(ERROR_CODE_PATTERN)


def error_code_problem(code: object) -> str | None:
    """Why ``code`` is no error code (None when it is one)."""
    if isinstance(code, str) and _ERROR_CODE.fullmatch(code):
        return None
    return (
        f"{shown(code)} is not an error code: a letter, then up to 63 letters, digits, "
        "'_', '.' or '-'"
    )


def checked_error_code(code: str) -> str:
    """``code`` if it is an error code, else a ValueError saying why (a pydantic
    validator: ``retry.codes``, ``sys.fail``'s ``code``)."""
    problem = error_code_problem(code)
    if problem is not None:
        raise ValueError(problem)
    return code


class StepError(FlowledgerError):
    """A step failed. ``retryable`` tells the runtime whether another attempt may help;
    ``retry_after`` (a timedelta, or seconds), how long the other side asked to be left
    alone (an HTTP ``Retry-After``): the next attempt then waits at least that long, as
    far as the step's retry policy allows (flowledger.runtime.handlers.retry_decision).
    ``code`` names the kind of failure (ERROR_CODE_PATTERN) for ``retry.on`` and for a
    later step to branch on; without one it is ``step``. A malformed code is kept here
    and refused when the failure is recorded (code ``step``, the message says why):
    raising here would hide the step's own failure behind a ValueError."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        details: object = None,
        retry_after: timedelta | float | None = None,
        code: str | None = None,
    ) -> None:
        self.message = message
        self.retryable = retryable
        self.details = details
        self.retry_after = _least_wait(retry_after)
        self.code = code
        super().__init__(message)


class StorageError(FlowledgerError):
    """The database could not be opened or used."""


class DatabaseUrlError(StorageError):
    """The database URL names nothing this flowledger opens (an unknown scheme or
    driver, an unparsable URL): refused input the user fixes, not a database fault."""


class MissingDatabaseError(DatabaseUrlError):
    """A command that only reads was pointed at a SQLite file that does not exist (it is
    never created for a read: a typo in --db must not leave an empty database behind)."""


class DatabaseUnreachableError(StorageError):
    """The database server could not be reached, or would not take connections yet (not
    running, starting up, shutting down): a condition that passes, unlike a refused
    password or a missing database. A worker starting before its database waits for it."""


class LeaseLostError(StorageError):
    """This process no longer owns the execution it tried to write (fencing)."""


class EngineClosedError(StorageError):
    """The Engine was closed (or was not open) while this call needed it. An execution it
    was driving is given back on close (its lease released, what ran recorded), so any
    process carries it on at once."""


class ArtifactDamagedError(StorageError):
    """An artifact's file is not the one the engine wrote: something else stands in its
    place (a symlink, a FIFO, a folder, a device) or its size or sha256 differs from the
    recorded ones. Permanent, unlike the database's troubles: no retry mends it; the
    operator restores the file (or the execution is pruned). A StorageError, which is
    what callers caught before this class existed."""


class EngineLoopError(FlowledgerError, RuntimeError):
    """An Engine was used from an event loop other than the one that opened it: an Engine
    belongs to that loop (its connections, lease heartbeat and HTTP client live there)."""


class NotFoundError(FlowledgerError):
    """An execution, workflow or other record does not exist."""


class AmbiguousIdError(NotFoundError):
    """A prefix that several ids start with; ``matches``: the first of them, ``more``:
    there are others."""

    def __init__(self, message: str, matches: list[str], more: bool = False) -> None:
        super().__init__(message)
        self.matches = matches
        self.more = more


class UnknownWorkflowError(NotFoundError):
    """No workflow of that name is stored (the message names the close ones)."""


class NotPushedError(NotFoundError):
    """A start by name of a workflow that is not pushed (deleted): its stored versions
    are history, named by number only."""


class PluginError(FlowledgerError):
    """A step-type plugin could not be loaded or registered."""


class ConflictError(FlowledgerError):
    """The request does not fit the current state (cancel a finished execution, ...)."""


class HeldElsewhereError(ConflictError, StorageError):
    """Another process holds (runs) the execution right now. Also a StorageError, which
    is what callers caught before this class existed."""


class JobRunCancelledError(ConflictError, StorageError):
    """The start of a job run's next workflow found the job run cancelled (between two
    of its workflows): nothing was started. A StorageError too, as the store raises it
    from inside the start's write."""


class ForbiddenError(FlowledgerError):
    """The caller may not do this (a token's role does not allow it)."""


class AuthenticationError(FlowledgerError):
    """No credential, or one that is unknown or revoked (HTTP 401)."""


class CursorError(InvalidInputError):
    """A page cursor that was edited, forged or taken from another listing (HTTP 400:
    the request is malformed, not a value to correct)."""


class MalformedBodyError(InvalidInputError):
    """A request body that is not JSON at all, or JSON with a key twice in one object
    (HTTP 400: the request is malformed; 422 is for JSON whose values are refused)."""


class RepeatedHeaderError(InvalidInputError):
    """A request header that counts once (``Idempotency-Key``, ``webhook-id``) sent more
    than once (HTTP 400: which one counts is left open, so neither is taken)."""


class UnsupportedEncodingError(InvalidInputError):
    """A request body sent with a ``Content-Encoding`` other than ``identity`` (HTTP 415):
    no body is decompressed, and one read as it came was refused for its bytes ("not
    UTF-8") or, labelled gzip but plain, taken."""


class TooLargeError(InvalidInputError):
    """A body, definition or input over its configured size limit (HTTP 413); ``limit``
    is that limit in bytes, and the message names it."""

    def __init__(self, message: str, field_path: Sequence[PathSegment] = (), *, limit: int) -> None:
        self.limit = limit
        super().__init__(message, field_path)


class TooManyError(FlowledgerError):
    """Too many concurrent streams or waits for one caller (HTTP 429); ``limit`` is the
    configured number."""

    def __init__(self, message: str, *, limit: int) -> None:
        self.limit = limit
        super().__init__(message)


class UnavailableError(FlowledgerError):
    """The server cannot serve this request as configured (HTTP 503): e.g. a webhook
    trigger's secret variable is not set, or its workflow is disabled. The operator, not
    the caller, must act; ``retry_after`` (seconds) is when a caller may try again."""

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        self.retry_after = retry_after
        super().__init__(message)


def did_you_mean(name: str, known: Iterable[str], *, partial: bool = False) -> str:
    """``; did you mean 'after'?`` for a misspelt name (empty when nothing is close).
    With ``partial``, a part of a name also finds up to three names it is in, those it
    begins first (``order`` → ``'order-pipeline', 'order-sync' or 'score-order'``): a
    filter typed short."""
    import difflib

    names = sorted(set(known))
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    part = name.strip().lower()
    if partial and part:
        holding = [n for n in names if part in n.lower()]
        holding.sort(key=lambda n: not n.lower().startswith(part))  # stable: by name within
        close = list(dict.fromkeys([*holding, *close]))[:3]
    if not close:
        return ""
    quoted = [f"'{n}'" for n in close]
    said = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    return f"; did you mean {said}?"


def unknown_field(
    name: object,
    fields: Sequence[str],
    *,
    what: str = "field",
    of: str = "",
    listed: str | None = None,
) -> str:
    """``unknown field 'retyr'; did you mean 'retry'? (its fields: id, type, …)``: a field
    its model does not have, the closest one it has, and all it has. ``what`` names the
    kind of field (``input field``), ``of`` its owner (`` for sys.transform``), ``listed``
    what the parenthesis says instead of the fields."""
    said = listed if listed is not None else f"its fields: {', '.join(fields) or 'none'}"
    return f"unknown {what} '{name}'{of}{did_you_mean(str(name), fields)} ({said})"


def field_message(error: Mapping[str, Any]) -> str:
    """A pydantic error (``ValidationError.errors()`` item) in our words, without its
    path: 'must be a list, not "a"' rather than "Input should be a valid list"."""
    kind = str(error.get("type", ""))
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    given = error.get("input")
    shows_input = "input" in error and kind not in ("missing", "extra_forbidden")
    got = f", not {shown(given)}" if shows_input else ""
    if kind in _TIMES:  # pydantic's reason is worth keeping: "month ... outside 1-12"
        reason = ctx.get("error")
        return "must be a time (2026-11-29T10:00:00Z)" + got + (f": {reason}" if reason else "")
    if kind == "string_unicode":  # the text itself is left out: no UTF-8 (nor JSON) for it
        return "holds a lone surrogate, which no stored text can hold; send valid Unicode"
    if kind in _KINDS:
        return _KINDS[kind] + got
    if kind in ("literal_error", "enum"):
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"must be one of {expected}{got}"
    if kind == "string_pattern_mismatch":
        return f"{shown(given)} does not match the pattern {ctx.get('pattern')}"
    if kind == "is_instance_of":  # a Python object a face may pass (a CompiledWorkflow)
        return f"must be a {ctx.get('class', 'value of another type')}{got}"
    for bound, words in _BOUNDS.items():
        if kind == bound:
            key, text = words
            return f"{text} {ctx.get(key)}{got}"
    if kind in ("too_short", "too_long", "string_too_short", "string_too_long"):
        least = kind.endswith("short")
        count = ctx.get("min_length" if least else "max_length")
        unit = "characters" if kind.startswith("string") else "items"
        if count == 1:
            unit = unit[:-1]  # "at least 1 character"
        if shows_input and isinstance(given, Sized):  # its size, not its first items
            got = f", not {len(given):,}"
        bound = f"{count:,}" if isinstance(count, int) else str(count)
        return f"must have at {'least' if least else 'most'} {bound} {unit}{got}"
    message = str(error.get("msg", "is invalid"))
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def shown(value: Any) -> str:
    """A value as the JSON or YAML it came from spells it (``null``, ``true``,
    ``{"a": 1}``), not as Python does; cut to 60 characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):  # not JSON (bytes, a date, NaN): Python's spelling
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_KINDS = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "url_parsing": "must be a URL",
}
_TIMES = frozenset({"datetime_type", "datetime_parsing", "datetime_from_date_parsing"})
_BOUNDS = {
    "greater_than_equal": ("ge", "must be at least"),
    "greater_than": ("gt", "must be more than"),
    "less_than_equal": ("le", "must be at most"),
    "less_than": ("lt", "must be less than"),
}
