"""The HTTP status and error code of each application error, for every HTTP face (the
API's error body, the web pages' answers): one table, so a refusal answers with the same
status whichever face it came through.

Decision: a ``FlowledgerError`` of no listed kind (a template or plugin error met while
handling a request) is the request's fault as far as the caller can tell: 422, never 500.

Decision: an artifact whose file is damaged or was replaced (ArtifactDamagedError) is 500,
``artifact_damaged``. It is the server's fault (its stored file is not the one it wrote),
and a permanent one: 503 (with Retry-After) invited a retry that never succeeds, and 409
says the caller could resolve a conflict, which it cannot; only the operator can, by
restoring the file. The message says which artifact and what is wrong with its file.
"""

from __future__ import annotations

from flowledger.errors import (
    ArtifactDamagedError,
    AuthenticationError,
    ConflictError,
    CursorError,
    DefinitionError,
    FlowledgerError,
    ForbiddenError,
    InputError,
    InvalidInputError,
    MalformedBodyError,
    NotFoundError,
    RepeatedHeaderError,
    StorageError,
    TooLargeError,
    TooManyError,
    UnavailableError,
    UnsupportedEncodingError,
)

#: (type, status, code), most specific first: the first match decides.
STATUSES: tuple[tuple[type[FlowledgerError], int, str], ...] = (
    (CursorError, 400, "invalid_cursor"),
    (MalformedBodyError, 400, "invalid_json"),
    (RepeatedHeaderError, 400, "repeated_header"),
    (TooLargeError, 413, "payload_too_large"),
    (UnsupportedEncodingError, 415, "unsupported_encoding"),
    (AuthenticationError, 401, "unauthenticated"),
    (ForbiddenError, 403, "forbidden"),
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (InvalidInputError, 422, "invalid_input"),
    (InputError, 422, "invalid_input"),
    (DefinitionError, 422, "invalid_definition"),
    (TooManyError, 429, "too_many_requests"),
    (ArtifactDamagedError, 500, "artifact_damaged"),
    (StorageError, 503, "storage_unavailable"),
    (UnavailableError, 503, "unavailable"),
)
#: Any other FlowledgerError.
OTHER = (422, "unprocessable")


def http_status(exc: FlowledgerError) -> tuple[int, str]:
    """The status and code ``exc`` is answered with."""
    for kind, status, code in STATUSES:
        if isinstance(exc, kind):
            return status, code
    return OTHER
