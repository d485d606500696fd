"""The UI's routes: sign-in, the executions list and its live stream; the execution
page (web.execution) and the catalogue pages (web.catalog) are routers of their own."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from flowledger.app import FollowAllEvents, ListExecutions
from flowledger.app.sessions import SignIn
from flowledger.app.statuses import http_status
from flowledger.errors import (
    AuthenticationError,
    FlowledgerError,
    InvalidInputError,
    UnknownWorkflowError,
    shown,
)
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
from flowledger.web.render import guarded, is_fragment, page, safe_next, see_other

router = APIRouter(include_in_schema=False)
router.include_router(execution.router)
router.include_router(catalog.router)

#: The list's text filters: query parameter → ListExecutions field. ``status`` (repeated:
#: any of them) and ``top_level`` (``1``: no parent) are read apart. ``input`` is one
#: PATH=VALUE here (the CLI and the API take several).
FILTERS = (
    "workflow",
    "correlation_id",
    "created_by",
    "parent_id",
    "created_after",
    "created_before",
    "input",
)
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


@router.get("/")
async def home() -> Response:
    return see_other("/executions")


@router.get("/signin")
async def signin_form(request: Request) -> Response:
    target = safe_next(request.query_params.get("next", ""))
    return page(request, "signin.html", None, title="Sign in", next=target)


@router.post("/signin")
@guarded
async def signin(request: Request) -> Response:
    same_origin(request, opaque_ok=False)
    form = await form_of(request)
    target = safe_next(first(form, "next"))
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
    """A ``datetime-local`` field, read as UTC: the form says so, as the list shows every
    time in UTC (it was read in the server's zone, which the page never named)."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(
            f"{label}: {shown(text)} is not a date and time (2026-11-30T09:00)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@router.get("/executions")
@guarded
async def executions(request: Request) -> Response:
    session = await session_of(request)
    app = app_of(request)
    query = request.query_params
    here = {k: query.get(k, "") for k in (*FILTERS, "limit")}
    filters: dict[str, Any] = {name: here[name] or None for name in FILTERS}
    # Several statuses, as the API takes them: each checked box, or one text of several.
    statuses = [s.strip() for given in query.getlist("status") for s in given.split(",")]
    statuses = list(dict.fromkeys(s for s in statuses if s))
    top_level = query.get("top_level", "") not in ("", "0")
    listing = counts = None
    problem = unknown = None
    try:
        filters["created_after"] = _when(here["created_after"], "created after")
        filters["created_before"] = _when(here["created_before"], "created before")
        limit = min(whole_number(here["limit"] or str(PAGE_SIZE), "limit"), MAX_PAGE_SIZE)
        chosen = ListExecutions(
            **filters,
            status=statuses or None,
            top_level=top_level,
            limit=limit,
            cursor=query.get("cursor") or None,
            id_prefixes=True,
        )
        listing = await app.executions.list(chosen)
        # The chips count what the list selects, every status apart (tour 22B M7).
        counts = await app.executions.count_by_status(chosen)
    except UnknownWorkflowError as exc:  # the listing says which stored names are close
        unknown = str(exc)
    except (ValueError, FlowledgerError) as exc:
        listing, problem = None, str(exc)
    template = "executions_part.html" if is_fragment(request) else "executions.html"
    kept = [(k, v) for k, v in here.items() if v] + ([("top_level", "1")] if top_level else [])
    chosen_pairs = [*kept, *(("status", s) for s in statuses)]
    older = None
    if listing is not None and listing.next_cursor:
        older = "/executions?" + urlencode([*chosen_pairs, ("cursor", listing.next_cursor)])
    return page(
        request,
        template,
        session,
        title="Executions",
        listing=listing,
        problem=problem,
        unknown=unknown,
        counts=counts,
        chips=_chip_links(kept),
        statuses=[s.value for s in ExecutionStatus],
        chosen_statuses=statuses,
        top_level=top_level,
        filters=here,
        older=older,
        live=not query.get("cursor"),
        refresh=f"{request.url.path}?{request.url.query}",
    )


def _chip_links(kept: list[tuple[str, str]]) -> dict[str, str]:
    """Each status chip's link, to that status alone (and "" for every status): the
    other filters kept."""
    statuses = ["", *(s.value for s in ExecutionStatus)]
    return {s: "/executions?" + urlencode([*kept, ("status", s)] if s else kept) for s in statuses}


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
