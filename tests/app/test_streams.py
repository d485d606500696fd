"""Live event streams: how they end."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import insert, update

from flowledger.app import App, CreateToken, RevokeToken, RunExecution, streams
from flowledger.app.models import FollowAllEvents, FollowEvents
from flowledger.app.streams import StreamItem
from flowledger.app.tokens import RECHECK, WATCH_EVERY, token_hash
from flowledger.storage.schema import events, executions
from flowledger.storage.sql import SQLStore
from flowledger.types import Row
from tests.storage.conftest import T0, execution_row


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
    reads = _count_calls(app.engine.store, monkeypatch, "find_api_token", "token_revision")
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


def _member(execution_id: str, parent: str | None) -> tuple[Row, Row]:
    """An execution row that goes on (InProgress) with one event, as the store keeps them."""
    row = execution_row(
        id=execution_id,
        parent_id=parent,
        root_id=None if parent is None else "head",
        runtime_status="InProgress",
        event_seq=1,
    )
    event = {"execution_id": execution_id, "seq": 1, "at": T0, "kind": "execution.started"}
    return row, event


async def test_a_quiet_family_stream_rechecks_its_family_in_one_read(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A family stream that heard nothing re-read every running member (a row and its
    events each) once a second: thousands of reads a second for a large fan-out. Now one
    read of the family's progress, and only the members that moved are read again."""
    store = app.engine.store
    assert isinstance(store, SQLStore)
    made = [_member("head", None)] + [_member(f"kid{i}", "head") for i in range(30)]
    with store.conn.begin():
        store.conn.execute(insert(executions), [row for row, _ in made])
        store.conn.execute(insert(events), [event for _, event in made])
    monkeypatch.setattr(streams, "RECHECK", 0.02)  # many quiet re-checks, quickly
    reads = _count_calls(store, monkeypatch, "get_execution", "get_events", "family_progress")
    stream = await app.streams.follow(FollowEvents(id="head", children=True, caller="ada"))
    received: list[StreamItem] = []

    async def listen() -> None:
        async for item in stream:
            received.append(item)

    listening = asyncio.create_task(listen())
    async with asyncio.timeout(30):  # bounds against hanging, not speed claims
        while len(received) < 31:  # each member's one event
            await asyncio.sleep(0.01)
        members_read = reads["get_execution"] + reads["get_events"]
        rechecks = reads["family_progress"]
        while reads["family_progress"] < rechecks + 5:
            await asyncio.sleep(0.01)
        assert reads["get_execution"] + reads["get_events"] == members_read
        # Moved without a word to this process's hub (as a lost hint): a member's new
        # event, and a new child.
        later = _member("late", "head")
        with store.conn.begin():
            store.conn.execute(insert(executions), [later[0]])
            store.conn.execute(insert(events), [later[1], {**made[7][1], "seq": 2}])
            store.conn.execute(
                update(executions).where(executions.c.id == "kid6").values(event_seq=2)
            )
        while len(received) < 33:
            await asyncio.sleep(0.01)
    app.streams.end()
    await listening
    got = sorted((i.execution_id, i.event["seq"]) for i in received if i.event is not None)
    assert got == sorted([(m, 1) for m in ["head", *(f"kid{i}" for i in range(30)), "late"]]
                         + [("kid6", 2)])  # fmt: skip


def _count_calls(store: Any, monkeypatch: pytest.MonkeyPatch, *names: str) -> dict[str, int]:
    """How many times each of the store's coroutine methods ``names`` is called, from now."""
    calls = dict.fromkeys(names, 0)
    for name in names:
        real = getattr(store, name)

        async def counted(*args: Any, _real: Any = real, _name: str = name) -> Any:
            calls[_name] += 1
            return await _real(*args)

        monkeypatch.setattr(store, name, counted)
    return calls
