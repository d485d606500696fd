"""Live event streams: an execution's history as it is written, or every execution's.

Both are woken by the change hub (app.changes) and read the events back from the store,
so what they send is exactly the committed history: gap-free, in ``seq`` order, never a
repeat within one stream.

- :meth:`EventStreams.follow` (one execution): the events after ``after_seq``, then
  each new one as it commits; it ends once the execution is terminal and everything up
  to its end was sent. Resuming is exact: reconnect with the last ``seq`` seen.
- :meth:`EventStreams.follow_all` (every execution, or one workflow's): a live tail —
  the events committed after it opened, plus the whole history of executions created
  after that. **Resume** on this stream is per execution, not global: item ids name
  ``(execution, seq)``; no single order of all executions' events exists across
  processes on PostgreSQL (concurrent commits become visible out of id order), so the
  stream does not replay across executions after a reconnect. A client that was away
  re-reads the list (``GET /executions``) and, for the executions it follows, their
  events after the last ``seq`` it saw. Decision: a list UI needs exactly that.

Either stream yields a keep-alive item (``event`` None) after ``keepalive`` quiet
seconds, so a face can write a comment and notice a client that went away. A stream
opened with a ``credential`` checks it again before it sends anything (the token rows
are cached for a second, app.tokens): once the token is revoked, the stream ends.

:meth:`EventStreams.end` ends every stream, open or opened later, even in the middle of
a wait: a server stopping (``flowledger serve`` on SIGTERM) would otherwise wait for
streams that never finish by themselves for its whole grace period, then cancel them
with an error. Clients reconnect (SSE's ``retry:``), to another node or once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

from flowledger.app.changes import RECHECK, ChangeHub, Subscription
from flowledger.app.models import FollowAllEvents, FollowEvents
from flowledger.app.slots import Slots
from flowledger.app.tokens import Tokens
from flowledger.errors import AuthenticationError, NotFoundError
from flowledger.runtime.documents import event_document
from flowledger.runtime.engine import Engine
from flowledger.runtime.status import ExecutionStatus
from flowledger.storage.base import Row
from flowledger.types import EventDocument

#: Seconds between keep-alive items on a quiet stream (the server may change it).
KEEPALIVE = 15.0
#: Executions a list stream remembers (what it sent, or that the filter skips them).
MAX_TRACKED = 10_000


@dataclass(frozen=True)
class StreamItem:
    execution_id: str
    #: None: nothing happened for ``keepalive`` seconds.
    event: EventDocument | None


class EventStream:
    """An open stream: iterate it once; closing it (or the end) frees its slot. It ends
    when ``ending`` is set (EventStreams.end)."""

    def __init__(
        self, items: AsyncIterator[StreamItem], stack: contextlib.ExitStack, ending: asyncio.Event
    ) -> None:
        self._items = items
        self._stack = stack
        self._ending = ending

    def __aiter__(self) -> AsyncIterator[StreamItem]:
        return self._run()

    async def _run(self) -> AsyncIterator[StreamItem]:
        ended = asyncio.ensure_future(self._ending.wait())
        step: asyncio.Future[StreamItem] | None = None
        try:
            while not self._ending.is_set():
                # The next item races the end: a stream spends its life waiting for one.
                step = asyncio.ensure_future(anext(self._items))
                await asyncio.wait({step, ended}, return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    return
                try:
                    item = step.result()
                except StopAsyncIteration:
                    return
                step = None
                yield item
        finally:
            ended.cancel()
            self._stack.close()  # first: a client that went away gets its slot back at once
            if step is not None and not step.done():  # ended, or the client went away
                step.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await step

    def close(self) -> None:
        self._stack.close()


class EventStreams:
    """The stream operations of one application (see :class:`flowledger.app.App`)."""

    def __init__(self, engine: Engine, hub: ChangeHub, slots: Slots, tokens: Tokens) -> None:
        self._engine = engine
        self._hub = hub
        self._slots = slots
        self._tokens = tokens
        self.keepalive = KEEPALIVE
        self._ending = asyncio.Event()

    def end(self) -> None:
        """End every stream, those open and those opened from now on (see the module doc)."""
        self._ending.set()

    async def ended(self, request: FollowEvents) -> bool:
        """The execution is terminal and has no event after ``after_seq``: a stream would
        end at once (an HTTP face answers 204, which stops EventSource reconnecting)."""
        row = await self._row(request.id)
        return _terminal(row) and request.after_seq >= int(row["event_seq"])

    async def follow(self, request: FollowEvents) -> EventStream:
        """Open a stream of one execution's events (NotFoundError, TooManyError now,
        before anything is sent)."""
        await self._row(request.id)
        stack = contextlib.ExitStack()
        with contextlib.ExitStack() as opening:
            opening.enter_context(self._slots.take("stream", request.caller))
            sub = opening.enter_context(self._hub.subscribe(request.id))
            stack.push(opening.pop_all())
        items = self._one(request.id, request.after_seq, sub)
        return EventStream(self._while_allowed(items, request.credential), stack, self._ending)

    async def follow_all(self, request: FollowAllEvents) -> EventStream:
        """Open a live tail of every execution's events (or one workflow's)."""
        stack = contextlib.ExitStack()
        with contextlib.ExitStack() as opening:
            opening.enter_context(self._slots.take("stream", request.caller))
            sub = opening.enter_context(self._hub.subscribe(None))
            stack.push(opening.pop_all())
        items = self._all(request.workflow, sub)
        return EventStream(self._while_allowed(items, request.credential), stack, self._ending)

    async def _while_allowed(
        self, items: AsyncIterator[StreamItem], credential: str | None
    ) -> AsyncIterator[StreamItem]:
        """``items`` until the token behind ``credential`` no longer authenticates."""
        async for item in items:
            if credential is not None:
                try:
                    await self._tokens.authenticate_hash(credential)
                except AuthenticationError:
                    return
            yield item

    async def _one(
        self, execution_id: str, after: int, sub: Subscription
    ) -> AsyncIterator[StreamItem]:
        loop = asyncio.get_running_loop()
        last_sent = loop.time()
        while True:
            row = await self._row(execution_id)  # first the row, then events up to it
            for event in await self._engine.store.get_events(execution_id, after):
                after = int(event["seq"])
                yield StreamItem(execution_id, cast(EventDocument, event_document(event)))
                last_sent = loop.time()
            if _terminal(row) and after >= int(row["event_seq"]):
                return
            idle = loop.time() - last_sent
            if idle >= self.keepalive:
                yield StreamItem(execution_id, None)
                last_sent = loop.time()
                continue
            await sub.wait(min(RECHECK, self.keepalive - idle))

    async def _all(self, workflow: str | None, sub: Subscription) -> AsyncIterator[StreamItem]:
        loop = asyncio.get_running_loop()
        opened = self._engine.clock.now()
        sent: dict[str, int] = {}  # execution id -> last seq sent; -1: not this workflow's
        last_sent = loop.time()
        while True:
            idle = loop.time() - last_sent
            if idle >= self.keepalive:
                yield StreamItem("", None)
                last_sent = loop.time()
                continue
            changes = await sub.wait(self.keepalive - idle)
            for execution_id in dict.fromkeys(c.execution_id for c in changes):
                after = sent.get(execution_id)
                if after is None:
                    row = await self._engine.store.get_execution(execution_id)
                    if row is None or (workflow and row["workflow_name"] != workflow):
                        _remember(sent, execution_id, -1)
                        continue
                    first = min(c.first_seq for c in changes if c.execution_id == execution_id)
                    after = 0 if row["created_at"] >= opened else max(first - 1, 0)
                if after < 0:
                    continue
                for event in await self._engine.store.get_events(execution_id, after):
                    after = int(event["seq"])
                    yield StreamItem(execution_id, cast(EventDocument, event_document(event)))
                    last_sent = loop.time()
                _remember(sent, execution_id, after)

    async def _row(self, execution_id: str) -> Row:
        row = await self._engine.store.get_execution(execution_id)
        if row is None:
            raise NotFoundError(f"execution {execution_id} does not exist")
        return row


def _terminal(row: Row) -> bool:
    return ExecutionStatus(row["runtime_status"]).terminal


def _remember(sent: dict[str, int], execution_id: str, seq: int) -> None:
    sent.pop(execution_id, None)
    sent[execution_id] = seq  # most recent last: the oldest is forgotten first
    while len(sent) > MAX_TRACKED:
        del sent[next(iter(sent))]
