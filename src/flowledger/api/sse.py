"""Server-Sent Events: an :class:`EventStream` of the application written as SSE.

Each event is ``id: …`` / ``event: <kind>`` / ``data: <the event document as JSON>``;
a quiet stream gets a ``: keep-alive`` comment every ``keepalive`` seconds (proxies and
load balancers drop idle connections; a write also finds a client that went away). The
first bytes are a ``retry:`` hint and a comment, so headers reach the client at once.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

from fastapi.responses import StreamingResponse

from flowledger.app.streams import EventStream, StreamItem

MEDIA_TYPE = "text/event-stream"
#: Milliseconds an EventSource waits before reconnecting.
RETRY_MS = 2000

IdOf = Callable[[StreamItem], str]


def wants_stream(accept: str | None) -> bool:
    return accept is not None and MEDIA_TYPE in accept.lower()


def sse_response(stream: EventStream, id_of: IdOf, *, extra: bool = False) -> StreamingResponse:
    """``extra`` adds ``executionId`` to each document (the all-executions stream)."""
    return StreamingResponse(
        _render(stream, id_of, extra),
        media_type=MEDIA_TYPE,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _render(stream: EventStream, id_of: IdOf, extra: bool) -> AsyncIterator[bytes]:
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n".encode()
        async for item in stream:
            if item.event is None:
                yield b": keep-alive\n\n"
                continue
            doc = {"executionId": item.execution_id, **item.event} if extra else item.event
            data = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
            yield f"id: {id_of(item)}\nevent: {item.event['kind']}\ndata: {data}\n\n".encode()
    finally:
        stream.close()
