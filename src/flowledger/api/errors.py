"""One mapping from errors to responses, for every route: ``{"error": {"code",
"message", "details"}}`` with the status the error's type decides.

=========================  ======  ====================  ==================================
error                      status  code                  details
=========================  ======  ====================  ==================================
CursorError                400     invalid_cursor        ``field_path``
MalformedBodyError         400     invalid_json          ``field_path``, ``problems``
RepeatedHeaderError        400     repeated_header       ``field_path``, ``problems``
body not JSON (FastAPI)    400     invalid_json          ``field_path``, ``problems``
AuthenticationError        401     unauthenticated       null
ForbiddenError             403     forbidden             null
NotFoundError              404     not_found             null
ConflictError              409     conflict              null
TooLargeError              413     payload_too_large     ``limit``, ``field_path``
UnsupportedEncodingError   415     unsupported_encoding  ``field_path``, ``problems``
InvalidInputError          422     invalid_input         ``field_path``, ``problems``
InputError                 422     invalid_input         ``field_path`` (empty)
DefinitionError            422     invalid_definition    ``problems`` (file, line, …)
RequestValidationError     422     invalid_input         ``field_path``, ``problems``
TooManyError               429     too_many_requests     ``limit``
ArtifactDamagedError       500     artifact_damaged      null
StorageError               503     storage_unavailable   null
UnavailableError           503     unavailable           null
other FlowledgerError      422     unprocessable         null
no route for the path      404     not_found             null
no file under a mount      404     not_found             null
no route for the method    405     method_not_allowed    null
other HTTP errors          as is   http_<status>         null
any other exception (bug)  500     internal_error        null (api.edge; traceback logged)
=========================  ======  ====================  ==================================

A request no route takes says so with its path, and for a path routed for other methods,
those methods (as ``Allow`` does): "no route PUT /api/v1/executions; allowed: GET". A file
the static files lack (``/ui/static/…``) says that: "there is no file /ui/static/x.css".

The statuses and codes are app.statuses' (the web pages answer with the same ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.staticfiles import StaticFiles

from flowledger.app.statuses import http_status
from flowledger.errors import (
    DefinitionError,
    FlowledgerError,
    InputError,
    InvalidInputError,
    TooLargeError,
    TooManyError,
    UnavailableError,
    field_message,
    format_path,
)
from flowledger.types import PathSegment
from flowledger.unions import plain_errors


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """Every error answer: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorBody


#: For ``responses=`` of routes: these statuses answer with :class:`ErrorResponse`.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse}
    for status in (400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503)
}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


def _path(path: Sequence[PathSegment]) -> dict[str, Any]:
    return {"field_path": list(path), "field": format_path(path)}


def classify(exc: FlowledgerError) -> tuple[int, str, Any]:
    """The status, code and details of an error."""
    status, code = http_status(exc)
    details: Any = None
    if isinstance(exc, TooLargeError):
        details = {"limit": exc.limit, **_path(exc.field_path)}
    elif isinstance(exc, InvalidInputError):
        problems = [{**_path(p), "message": m} for p, m in exc.problems]
        details = {**_path(exc.field_path), "problems": problems}
    elif isinstance(exc, InputError):
        details = _path(())
    elif isinstance(exc, DefinitionError):
        details = {"problems": [_problem(p) for p in exc.problems]}
    elif isinstance(exc, TooManyError):
        details = {"limit": exc.limit}
    return status, code, details


def _problem(problem: Any) -> dict[str, Any]:
    return {
        "message": problem.message,
        "file": problem.file,
        "line": problem.line,
        "column": problem.column,
        "step": problem.step_id,
        "path": list(problem.path),
        "text": problem.format(),
    }


def _message(exc: FlowledgerError) -> str:
    if isinstance(exc, InvalidInputError):
        return str(exc)
    if isinstance(exc, DefinitionError):
        count = len(exc.problems)
        first = exc.problems[0].format() if exc.problems else "the definition is invalid"
        return first if count == 1 else f"{first} (and {count - 1} more problems)"
    return str(exc) or type(exc).__name__


#: Headers HTTP asks of these statuses: how to authenticate (RFC 9110 §11.6.1), and when
#: to try again (a stream or wait slot, the database: seconds, not the end of a wait).
_STATUS_HEADERS = {
    401: {"WWW-Authenticate": 'Bearer realm="flowledger"'},
    429: {"Retry-After": "1"},
    503: {"Retry-After": "1"},
}


def flowledger_response(exc: FlowledgerError) -> JSONResponse:
    """The answer to an error of the application (routes raise it; api.hot calls this)."""
    status, code, details = classify(exc)
    headers = _STATUS_HEADERS.get(status)
    if isinstance(exc, UnavailableError):
        headers = {"Retry-After": str(exc.retry_after)}
    return error_response(status, code, _message(exc), details, headers)


async def _flowledger(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FlowledgerError)
    return flowledger_response(exc)


#: What a body that is not a JSON object fails as: a model's, or a bare object's (an
#: entity's payload, which said "must be a mapping, not b'{...}'" of bytes not sent as JSON).
_NOT_AN_OBJECT = frozenset({"model_attributes_type", "dict_type"})


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    malformed = False
    for item in plain_errors(exc.errors()):
        loc = list(item.get("loc", ()))
        where = loc.pop(0) if loc and loc[0] in ("body", "query", "path", "header") else None
        if item.get("type") == "json_invalid":
            # Its loc is ("body", offset): a character position, not a field.
            problems.append({**_path(()), "in": where, "message": _json_invalid(item, loc)})
            malformed = True
            continue
        if where == "body" and not loc and item.get("type") in _NOT_AN_OBJECT:
            # A body not sent as JSON reaches the model as bytes; JSON null as None.
            message = (
                "the body must be a JSON object, not null"
                if item.get("input") is None
                else "the body must be a JSON object, sent with Content-Type: application/json"
            )
            problems.append({**_path(()), "in": where, "message": message})
            continue
        problems.append({**_path(loc), "in": where, "message": field_message(item)})
    first = problems[0] if problems else {"field": "", "message": "the request is invalid"}
    message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    details = {**{k: first.get(k) for k in ("field_path", "field")}, "problems": problems}
    if malformed:  # not JSON at all: a malformed request, as a forged cursor is
        return error_response(400, "invalid_json", message, details)
    return error_response(422, "invalid_input", message, details)


def _json_invalid(item: Any, loc: list[Any]) -> str:
    reason = (item.get("ctx") or {}).get("error")
    at = f" at character {loc[0]}" if loc and isinstance(loc[0], int) else ""
    return f"the request body is not valid JSON{at}" + (f": {reason}" if reason else "")


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    path = request.url.path
    if exc.status_code == 404:
        # The static files' (the mount matched, the file is missing), or the router's.
        if isinstance(request.scope.get("endpoint"), StaticFiles):
            message = f"there is no file {path}"
        else:
            message = f"no route {path}"
        return error_response(404, "not_found", message, None, headers or None)
    if exc.status_code == 405:
        # Starlette's Allow names the first route of the path only (GET of
        # /workflows/{name}, not its DELETE): every route of the path counts.
        allowed = _allowed(request) or headers.get("Allow", "")
        headers["Allow"] = allowed
        message = f"no route {request.method} {path}; allowed: {allowed}"
        return error_response(405, "method_not_allowed", message, None, headers)
    message = exc.detail if isinstance(exc.detail, str) else "the request failed"
    return error_response(
        exc.status_code, f"http_{exc.status_code}", message, None, headers or None
    )


#: The methods a 405 looks for among the routes of its path.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed(request: Request) -> str:
    """The methods some route of the request's path takes, comma-separated: each asked
    of the routes as the request with that method (routers of included routers too)."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    ]
    return ", ".join(allowed)


def install(api: FastAPI) -> None:
    """Register the one mapping on the application."""
    api.add_exception_handler(FlowledgerError, _flowledger)
    api.add_exception_handler(RequestValidationError, _validation)
    api.add_exception_handler(HTTPException, _http)
