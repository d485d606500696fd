"""The UI's routes: sign-in, the executions list and its live stream; the execution
page (web.execution) and the catalogue pages (web.catalog) are routers of their own."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from flowledger.app import FollowAllEvents, ListExecutions
from flowledger.app.sessions import SignIn
from flowledger.app.statuses import http_status
from flowledger.app.views import CountByStatus
from flowledger.errors import AuthenticationError, FlowledgerError, InvalidInputError, shown
from flowledger.runtime.status import ExecutionStatus
from flowledger.web import catalog, execution
from flowledger.web.auth import (
    app_of,
    changing,
    clear_session,
    first,
    form_of,
    same_origin,
    session_of,
    set_session,
)
from flowledger.web.forms import whole_number
from flowledger.web.live import change_stream
from flowledger.web.render import guarded, is_fragment, page, see_other

router = APIRouter(include_in_schema=False)
router.include_router(execution.router)
router.include_router(catalog.router)

#: The list's filters: query parameter → ListExecutions field.
FILTERS = ("status", "workflow", "correlation_id", "created_by", "created_after", "created_before")
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


@router.get("/")
async def home() -> Response:
    return see_other("/executions")


def _safe_next(target: str) -> str:
    """Only a path on this server (no ``//host``, no scheme): an open redirect is a phish."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/executions"


@router.get("/signin")
async def signin_form(request: Request) -> Response:
    target = _safe_next(request.query_params.get("next", ""))
    return page(request, "signin.html", None, title="Sign in", next=target)


@router.post("/signin")
@guarded
async def signin(request: Request) -> Response:
    same_origin(request, opaque_ok=False)
    form = await form_of(request)
    target = _safe_next(first(form, "next"))
    try:
        session = await app_of(request).sessions.sign_in(SignIn(token=first(form, "token")))
    except (AuthenticationError, FlowledgerError) as exc:
        # Its own status: a database that does not answer is a 503, not a bad token's 401.
        status = http_status(exc)[0]
        return page(
            request, "signin.html", None, status, title="Sign in", next=target, error=str(exc)
        )
    response = see_other(target)
    set_session(response, request, session)
    return response


@router.post("/signout")
@guarded
async def signout(request: Request) -> Response:
    session, _ = await changing(request, "viewer")
    await app_of(request).sessions.sign_out(session)  # on the server, not only here
    response = see_other("/signin")
    clear_session(response)
    return response


def _when(text: str, label: str) -> datetime | None:
    """A ``datetime-local`` field (the browser's local time, sent without a zone) as UTC."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(
            f"{label}: {shown(text)} is not a date and time (2026-11-30T09:00)"
        ) from None
    return value if value.tzinfo else value.astimezone()


@router.get("/executions")
@guarded
async def executions(request: Request) -> Response:
    session = await session_of(request)
    app = app_of(request)
    query = request.query_params
    filters: dict[str, Any] = {name: query.get(name) or None for name in FILTERS}
    try:
        filters["created_after"] = _when(query.get("created_after", ""), "created after")
        filters["created_before"] = _when(query.get("created_before", ""), "created before")
        limit = min(whole_number(query.get("limit") or str(PAGE_SIZE), "limit"), MAX_PAGE_SIZE)
        listing = await app.executions.list(
            ListExecutions(**filters, limit=limit, cursor=query.get("cursor") or None)
        )
        problem = None
    except (ValueError, FlowledgerError) as exc:
        listing, problem = None, str(exc)
    counts = await app.views.status_counts(CountByStatus(workflow=filters["workflow"]))
    here = {k: query.get(k, "") for k in (*FILTERS, "limit")}
    template = "executions_part.html" if is_fragment(request) else "executions.html"
    return page(
        request,
        template,
        session,
        title="Executions",
        listing=listing,
        problem=problem,
        counts=counts,
        statuses=[s.value for s in ExecutionStatus],
        filters=here,
        live=not query.get("cursor"),
        refresh=f"{request.url.path}?{request.url.query}",
    )


@router.get("/ui/live")
@guarded
async def live_all(request: Request) -> Response:
    session = await session_of(request)
    workflow = request.query_params.get("workflow") or None
    stream = await app_of(request).streams.follow_all(
        FollowAllEvents(
            workflow=workflow,
            caller=f"web:{session.caller['name']}",
            credential=session.credential,
        )
    )
    return change_stream(stream)
