"""Server-Sent Events: an :class:`~flowledger.app.streams.EventStream` as the bytes of a
``text/event-stream``, for every face that streams (the API's event streams, the pages'
change notices); each face says what one message holds (:data:`Frame`).

The first bytes are a ``retry:`` hint and a comment, so headers reach the client at once;
a quiet stream gets a ``: keep-alive`` comment each keep-alive interval (proxies and load
balancers drop idle connections; a write also finds a client that went away). The stream
is closed (its slot freed) however the response ends.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping

from flowledger.app.streams import EventStream, StreamItem
from flowledger.types import EventDocument

MEDIA_TYPE = "text/event-stream"
#: What a streamed response carries besides its media type: no caching, and no
#: buffering in a proxy (nginx honours X-Accel-Buffering) that would hold events back.
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
#: Milliseconds an EventSource waits before reconnecting.
RETRY_MS = 2000

#: One event as one message: its ``id:`` (what ``Last-Event-ID`` gives back), its
#: ``event:`` name and its ``data:`` document.
Frame = Callable[[str, EventDocument], tuple[str, str, Mapping[str, object]]]


async def sse_messages(stream: EventStream, frame: Frame) -> AsyncIterator[bytes]:
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n".encode()
        async for item in stream:
            yield _message(item, frame)
    finally:
        stream.close()


def _message(item: StreamItem, frame: Frame) -> bytes:
    if item.event is None:
        return b": keep-alive\n\n"
    event_id, name, doc = frame(item.execution_id, item.event)
    data = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return f"id: {event_id}\nevent: {name}\ndata: {data}\n\n".encode()
