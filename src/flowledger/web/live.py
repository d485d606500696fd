"""Live updates for the pages: Server-Sent Events that only say "something changed"
(``event: change``, the execution id and the event kind); the page then fetches its
fresh part from the server, so what it shows is always rendered the one way."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from flowledger.app.streams import EventStream

#: Milliseconds an EventSource waits before reconnecting.
RETRY_MS = 2000


def change_stream(stream: EventStream) -> StreamingResponse:
    return StreamingResponse(
        _write(stream),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _write(stream: EventStream) -> AsyncIterator[bytes]:
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n".encode()
        async for item in stream:
            if item.event is None:
                yield b": keep-alive\n\n"
                continue
            data = json.dumps(
                {
                    "executionId": item.execution_id,
                    "seq": item.event["seq"],
                    "kind": item.event["kind"],
                }
            )
            yield f"id: {item.event['seq']}\nevent: change\ndata: {data}\n\n".encode()
    finally:
        stream.close()
