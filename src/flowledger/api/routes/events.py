"""Event histories, as a JSON list or live as Server-Sent Events (SPEC §6; viewer).

``GET /executions/{id}/events``: the history after ``?after=seq`` as a JSON list, one page
of at most ``?limit=`` events (1000 unless given; FLOWLEDGER_MAX_PAGE caps it); when more
follow, the ``Link`` header's ``rel="next"`` is the next page (``after`` = the last one's
``seq``). Decision: the body stays the plain list of SPEC §4's event documents, not
``{items, nextCursor}``, so a client reading a short history reads it as before.
With ``Accept: text/event-stream`` the same history, unpaged, then live: ``id:`` is the
``seq``, ``event:`` the kind, ``data:`` the event document. Reconnecting with
``Last-Event-ID`` (it wins over ``after``) resumes exactly after that event; the stream
ends when the execution is terminal and all its events were sent. A stream asked of an
execution that already ended and has nothing after ``Last-Event-ID`` is answered 204,
which tells an EventSource to stop reconnecting.

``?children=true`` (streams only) adds its descendants' events, children started later
included, framed as ``GET /events`` frames them; only its own events resume, and once the
whole family has ended a reconnect is answered 204.

``GET /events?workflow=NAME``: a live tail of every execution's events (or one
workflow's), each document with its ``executionId``; ``id:`` is ``<executionId>/<seq>``.
No replay across executions on reconnect (``Last-Event-ID`` is not used here): re-read
``GET /executions`` and, per execution, its events after the last seq seen
(``flowledger.app.streams`` says why).

Open streams per token are limited (``FLOWLEDGER_MAX_STREAMS``, 429 past it).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from flowledger.api.deps import API_PREFIX, AppDep, Viewer
from flowledger.api.errors import ERROR_RESPONSES
from flowledger.api.render import given, render
from flowledger.api.sse import many_executions, one_execution, sse_response, wants_stream
from flowledger.app import EventDocument, FollowAllEvents, FollowEvents, ListEvents
from flowledger.app.sse import MEDIA_TYPE
from flowledger.errors import InvalidInputError

router = APIRouter(prefix=API_PREFIX, tags=["events"], responses=ERROR_RESPONSES)

_SSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {MEDIA_TYPE: {"schema": {"type": "string"}}}}
}


@router.get(
    "/executions/{id}/events",
    response_model=list[EventDocument],
    responses={**_SSE, 204: {"description": "the stream has nothing more to send"}},
    summary="An execution's event history; live with Accept: text/event-stream (viewer)",
)
async def get_execution_events(
    id: str,
    app: AppDep,
    caller: Viewer,
    http: Request,
    after: Annotated[int, Query(ge=0, description="only events with a greater seq")] = 0,
    limit: Annotated[
        int | None,
        Query(
            description="events per page of the JSON list: 1 to 1000 (FLOWLEDGER_MAX_PAGE); "
            "1000 otherwise. The Link header's rel=next is the next page."
        ),
    ] = None,
    accept: Annotated[str | None, Header()] = None,
    last_event_id: Annotated[str | None, Header()] = None,
    children: Annotated[
        bool,
        Query(
            description="with Accept: text/event-stream, its descendants' events too "
            "(ids <executionId>/<seq>, as GET /events frames them)"
        ),
    ] = False,
) -> Response:
    if not wants_stream(accept):
        listing = ListEvents(id=id, after_seq=after, **given(limit=limit))
        found = await app.executions.events(listing)
        answer = render(found["items"])
        if found["nextCursor"] is not None:
            more = http.url.include_query_params(after=found["nextCursor"])
            answer.headers["Link"] = f'<{more.path}?{more.query}>; rel="next"'
        return answer
    if children:
        return await _follow_family(app, caller, id, after, last_event_id)
    if last_event_id is not None:
        if not last_event_id.strip().isdigit():
            raise InvalidInputError(
                "must be the seq of an event of this execution", ("Last-Event-ID",)
            )
        after = int(last_event_id)
    try:
        request = FollowEvents(
            id=id, after_seq=after, caller=caller.name, credential=caller.credential
        )
    except InvalidInputError as exc:  # the seq came in the header, if there was one
        raise exc if last_event_id is None else exc.renamed("after", "Last-Event-ID") from None
    if await app.streams.ended(request):
        return Response(status_code=204)
    stream = await app.streams.follow(request)
    return sse_response(stream, one_execution)


async def _follow_family(
    app: AppDep, caller: Viewer, id: str, after: int, last_event_id: str | None
) -> Response:
    """``?children=true``: only the execution's own events resume (a Last-Event-ID of
    ``<id>/<seq>``); its descendants' are sent again whole. Once the whole family has
    ended, a reconnect (any Last-Event-ID) is answered 204."""
    head, _, seq = (last_event_id or "").strip().rpartition("/")
    if head == id and seq.isdigit():
        after = int(seq)
    request = FollowEvents(
        id=id, after_seq=after, caller=caller.name, credential=caller.credential, children=True
    )
    if last_event_id is not None and await app.streams.ended(request):
        return Response(status_code=204)
    stream = await app.streams.follow(request)
    return sse_response(stream, many_executions)


@router.get(
    "/events",
    responses=_SSE,
    response_class=Response,
    summary="A live stream of every execution's events, or one workflow's (viewer)",
)
async def follow_events(
    app: AppDep,
    caller: Viewer,
    workflow: Annotated[str | None, Query(description="only this workflow's")] = None,
) -> Response:
    request = FollowAllEvents(workflow=workflow, caller=caller.name, credential=caller.credential)
    stream = await app.streams.follow_all(request)
    return sse_response(stream, many_executions)
