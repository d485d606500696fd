"""Live event streams: how they end."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowledger.app import App, CreateToken, RevokeToken, RunExecution
from flowledger.app.models import FollowAllEvents
from flowledger.app.streams import StreamItem
from flowledger.app.tokens import RECHECK, WATCH_EVERY, token_hash


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


LOOPY = """
name: loopy
steps:
  - id: each
    type: sys.loop
    input: {items: "{{ range(150) | list }}", concurrency: 4}
    steps: [{id: tag, type: sys.transform, input: {value: "{{ loop.each.item }}"}}]
"""


async def test_a_quiet_stream_ends_within_seconds_of_its_token_revoked_elsewhere(
    app: App, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quiet stream went on for up to a keep-alive (15 s) after its token was revoked
    in another process. Now it ends within about a second; and sending events reads no
    token row per event, nor the revision more than once a second."""
    store = app.engine.store
    reads = {"find_api_token": 0, "token_revision": 0}
    for name in reads:
        real = getattr(store, name)

        async def counted(*args: Any, _real: Any = real, _name: str = name) -> Any:
            reads[_name] += 1
            return await _real(*args)

        monkeypatch.setattr(store, name, counted)
    app.streams.keepalive = 60.0  # quiet: a keep-alive would end it only after a minute
    made = await app.tokens.create(CreateToken(name="watcher"))
    request = FollowAllEvents(caller="watcher", credential=token_hash(made["token"]))
    stream = await app.streams.follow_all(request)
    received: list[StreamItem] = []

    async def listen() -> None:
        async for item in stream:
            received.append(item)

    loop = asyncio.get_running_loop()
    began = loop.time()
    listening = asyncio.create_task(listen())
    done = await app.executions.run(RunExecution(workflow=app.engine.load_text(LOOPY)))
    events = len(await app.engine.events(done["id"]))
    assert events > 300
    async with asyncio.timeout(30):  # a bound against hanging, not a speed claim
        while len(received) < events:
            await asyncio.sleep(0.01)
    seconds = loop.time() - began
    assert reads["find_api_token"] <= seconds / RECHECK + 2, (reads, seconds)
    assert reads["token_revision"] <= seconds / WATCH_EVERY + 2, (reads, seconds)
    async with App(db_url) as other:  # another process's revoke: nothing tells this one
        await other.tokens.revoke(RevokeToken(name="watcher"))
    revoked = loop.time()
    async with asyncio.timeout(10):
        await listening
    assert loop.time() - revoked < 3.0  # WATCH_EVERY, and a read of the token
    assert len(received) == events  # nothing after
    assert app.slots.held("stream", "watcher") == 0


async def test_a_quiet_stream_ends_when_its_token_expires(app: App) -> None:
    app.streams.keepalive = 60.0
    made = await app.tokens.create(CreateToken(name="brief", expires_in="1s"))
    request = FollowAllEvents(caller="brief", credential=token_hash(made["token"]))
    stream = await app.streams.follow_all(request)
    async with asyncio.timeout(10):  # not the keep-alive's minute
        assert [item async for item in stream] == []
    assert app.slots.held("stream", "brief") == 0
