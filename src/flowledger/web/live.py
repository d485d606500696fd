"""Live updates for the pages: Server-Sent Events that only say "something changed"
(``event: change``, the execution id and the event kind); the page then fetches its
fresh part from the server, so what it shows is always rendered the one way."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi.responses import StreamingResponse

from flowledger.app.sse import HEADERS, MEDIA_TYPE, sse_messages
from flowledger.app.streams import EventStream
from flowledger.types import EventDocument


def change_stream(stream: EventStream) -> StreamingResponse:
    return StreamingResponse(sse_messages(stream, _change), media_type=MEDIA_TYPE, headers=HEADERS)


def _change(execution_id: str, event: EventDocument) -> tuple[str, str, Mapping[str, object]]:
    seq = event["seq"]
    return str(seq), "change", {"executionId": execution_id, "seq": seq, "kind": event["kind"]}
