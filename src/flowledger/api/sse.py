"""The API's event streams as Server-Sent Events (the framing is app.sse's).

Each event is ``id: …`` / ``event: <kind>`` / ``data: <the event document as JSON>``;
the id is the event's ``seq`` on one execution's stream, ``<execution id>/<seq>`` on the
stream of many (whose documents carry ``executionId`` too).
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi.responses import StreamingResponse

from flowledger.app.sse import HEADERS, MEDIA_TYPE, Frame, sse_messages
from flowledger.app.streams import EventStream
from flowledger.types import EventDocument


def wants_stream(accept: str | None) -> bool:
    return accept is not None and MEDIA_TYPE in accept.lower()


def sse_response(stream: EventStream, frame: Frame) -> StreamingResponse:
    return StreamingResponse(sse_messages(stream, frame), media_type=MEDIA_TYPE, headers=HEADERS)


def one_execution(execution_id: str, event: EventDocument) -> tuple[str, str, Mapping[str, object]]:
    del execution_id  # the stream's own
    return str(event["seq"]), event["kind"], event


def many_executions(
    execution_id: str, event: EventDocument
) -> tuple[str, str, Mapping[str, object]]:
    return f"{execution_id}/{event['seq']}", event["kind"], {"executionId": execution_id, **event}
