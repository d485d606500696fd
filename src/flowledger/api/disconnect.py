"""Work a request waits on, cancelled when its client goes away.

A long poll (``GET /executions/{id}?wait=30``) holds one of its caller's wait slots
(app.slots) until it returns. Starlette does not tell an ordinary route that the client
left, so without this a client that gave up still held its slot for the whole wait,
and the token was refused (429) meanwhile. Event streams need none of this: their
response notices the disconnect itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import Request

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before the work was done (nothing is sent)."""


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """``work``'s result; ClientGone, with ``work`` cancelled, if the client leaves first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.create_task(_disconnect(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raise ClientGone


async def _disconnect(request: Request) -> None:
    """Returns once the server hears that the client left (its body, if any, is read:
    the routes that wait have none)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
