"""Live event streams: how they end."""

from __future__ import annotations

import asyncio

from flowledger.app import App
from flowledger.app.models import FollowAllEvents
from flowledger.app.streams import StreamItem


async def test_ending_the_streams_ends_those_open_mid_wait_and_those_opened_later(
    app: App,
) -> None:
    """A stream never ends by itself: a server stopping waited its whole grace for it."""
    open_one = await app.streams.follow_all(FollowAllEvents(caller="ada"))
    received: list[StreamItem] = []

    async def listen() -> None:
        async for item in open_one:
            received.append(item)

    listening = asyncio.create_task(listen())
    await asyncio.sleep(0.05)  # let it wait for an event; nothing happens
    assert not listening.done()
    app.streams.end()
    async with asyncio.timeout(10):  # a bound against hanging, not a speed claim
        await listening
        later = await app.streams.follow_all(FollowAllEvents(caller="ada"))
        assert [item async for item in later] == []
    assert received == []
    assert app.slots.held("stream", "ada") == 0 and app.changes.watching == 0
