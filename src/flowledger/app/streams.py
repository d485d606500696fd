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
- :meth:`EventStreams.follow` with ``children``: the execution's events as above, and
  every descendant's whole history (children started later too, app.family), merged
  by time; it ends once the whole family is terminal and sent (a child told to stop
  when its parent ended ends after it). Only the execution's own events resume.

Either stream yields a keep-alive item (``event`` None) after ``keepalive`` quiet
seconds, so a face can write a comment and notice a client that went away. A stream
opened with a ``credential`` checks it again before it sends anything (the token rows
are cached for a second, app.tokens), and, between items, whenever a token may have
been revoked (Tokens.revoked_signal: at once in this process, within a second of a
revocation in another one): once the token is revoked, the stream ends, however quiet
it is. Sending an event reads no token row more than any request does.

:meth:`EventStreams.end` ends every stream, open or opened later, even in the middle of
a wait: a server stopping (``flowledger serve`` on SIGTERM) would otherwise wait for
streams that never finish by themselves for its whole grace period, then cancel them
with an error. Clients reconnect (SSE's ``retry:``), to another node or once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from flowledger.app.changes import RECHECK, ChangeHub, Subscription
from flowledger.app.family import Family
from flowledger.app.models import FollowAllEvents, FollowEvents
from flowledger.app.slots import Slots
from flowledger.app.tokens import Tokens
from flowledger.errors import AuthenticationError
from flowledger.runtime.documents import event_document
from flowledger.runtime.engine import Engine
from flowledger.runtime.missing import missing_execution
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


@dataclass(frozen=True)
class _Credential:
    """The token a stream was opened with (its hash), checked as the stream goes."""

    tokens: Tokens
    digest: str
    #: The loop's time when the token expires (None: never).
    expires: float | None

    async def allowed(self) -> bool:
        try:
            await self.tokens.authenticate_hash(self.digest)
        except AuthenticationError:
            return False
        return True


class EventStream:
    """An open stream: iterate it once; closing it (or the end) frees its slot. It ends
    when ``ending`` is set (EventStreams.end), or once its ``credential`` is refused."""

    def __init__(
        self,
        items: AsyncIterator[StreamItem],
        stack: contextlib.ExitStack,
        ending: asyncio.Event,
        credential: _Credential | None = None,
    ) -> None:
        self._items = items
        self._stack = stack
        self._ending = ending
        self._credential = credential

    def __aiter__(self) -> AsyncIterator[StreamItem]:
        return self._run()

    async def _run(self) -> AsyncIterator[StreamItem]:
        credential = self._credential
        expires = None
        if credential is not None:
            self._stack.enter_context(credential.tokens.watching())
            expires = credential.expires
        loop = asyncio.get_running_loop()
        ended = asyncio.ensure_future(self._ending.wait())
        revoked = self._revoked()
        step: asyncio.Future[StreamItem] | None = None
        try:
            while not self._ending.is_set():
                # The next item races the end (and a revocation): a stream spends its life
                # waiting for one.
                step = asyncio.ensure_future(anext(self._items))
                while True:
                    waits: set[asyncio.Future[Any]] = {step, ended}
                    if revoked is not None:
                        waits.add(revoked)
                    left = None if expires is None else max(0.0, expires - loop.time())
                    await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                    if step.done() or ended.done():
                        break
                    if revoked is not None and revoked.done():
                        revoked = self._revoked()  # a token was revoked: this one?
                    elif expires is not None and loop.time() >= expires:
                        expires = None  # it expires now (checked by the token's own rule)
                    else:
                        continue  # woken a moment early: wait on
                    if credential is not None and not await credential.allowed():
                        return
                if not step.done():
                    return
                try:
                    item = step.result()
                except StopAsyncIteration:
                    return
                step = None
                if credential is not None and not await credential.allowed():
                    return  # the row remembered for a second: no read per event
                yield item
        finally:
            ended.cancel()
            if revoked is not None:
                revoked.cancel()
            self._stack.close()  # first: a client that went away gets its slot back at once
            if step is not None and not step.done():  # ended, or the client went away
                step.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await step

    def _revoked(self) -> asyncio.Future[bool] | None:
        """Done once a token may have been revoked (None: no token to check)."""
        if self._credential is None:
            return None
        return asyncio.ensure_future(self._credential.tokens.revoked_signal().wait())

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
        end at once (an HTTP face answers 204, which stops EventSource reconnecting).
        With ``children``: the execution and all its descendants are terminal."""
        row = await self._row(request.id)
        if not request.children:
            return _terminal(row) and request.after_seq >= int(row["event_seq"])
        # A family's: whether all of it has ended (its descendants are sent whole).
        if not _terminal(row):
            return False
        progress = await Family(self._engine.store, row).progress()
        return all(_terminal(member) for member in progress.values())

    async def follow(self, request: FollowEvents) -> EventStream:
        """Open a stream of one execution's events (NotFoundError, TooManyError now,
        before anything is sent)."""
        row = await self._row(request.id)
        credential = await self._credential(request.credential)
        stack = contextlib.ExitStack()
        with contextlib.ExitStack() as opening:
            opening.enter_context(self._slots.take("stream", request.caller))
            # A family's descendants are found as they change: hear every execution.
            heard = None if request.children else request.id
            sub = opening.enter_context(self._hub.subscribe(heard))
            stack.push(opening.pop_all())
        if request.children:
            items = self._family(Family(self._engine.store, row), request.after_seq, sub)
        else:
            items = self._one(request.id, request.after_seq, sub)
        return EventStream(items, stack, self._ending, credential)

    async def follow_all(self, request: FollowAllEvents) -> EventStream:
        """Open a live tail of every execution's events (or one workflow's)."""
        credential = await self._credential(request.credential)
        stack = contextlib.ExitStack()
        with contextlib.ExitStack() as opening:
            opening.enter_context(self._slots.take("stream", request.caller))
            sub = opening.enter_context(self._hub.subscribe(None))
            stack.push(opening.pop_all())
        # Opened now, not when it is first read: an execution created meanwhile is sent
        # from its start.
        items = self._all(request.workflow, sub, self._engine.clock.now())
        return EventStream(items, stack, self._ending, credential)

    async def _credential(self, digest: str | None) -> _Credential | None:
        if digest is None:
            return None
        left = await self._tokens.seconds_left(digest)
        expires = None if left is None else asyncio.get_running_loop().time() + left
        return _Credential(self._tokens, digest, expires)

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

    async def _family(
        self, family: Family, after: int, sub: Subscription
    ) -> AsyncIterator[StreamItem]:
        loop = asyncio.get_running_loop()
        store = self._engine.store
        sent = {family.head: after}  # member -> last seq sent
        finished: set[str] = set()  # terminal, and everything sent
        await family.progress()  # those below it now join
        due = list(family.members)  # members to read now
        last_sent = loop.time()
        while True:
            runs: list[list[tuple[str, StreamItem]]] = []
            for member in due:
                row = await store.get_execution(member)
                if row is None:  # pruned meanwhile: nothing more to send of it
                    finished.add(member)
                    continue
                seen = sent.get(member, 0)
                run = []
                for event in await store.get_events(member, seen):
                    seen = int(event["seq"])
                    document = cast(EventDocument, event_document(event))
                    run.append((document["at"], StreamItem(member, document)))
                sent[member] = seen
                if _terminal(row) and seen >= int(row["event_seq"]):
                    finished.add(member)
                runs.append(run)
            # Each member's events stay in seq order; between members, in time order.
            for _, item in heapq.merge(*runs, key=lambda pair: pair[0]):
                yield item
                last_sent = loop.time()
            if finished.issuperset(family.members):
                return
            idle = loop.time() - last_sent
            if idle >= self.keepalive:
                yield StreamItem(family.head, None)
                last_sent = loop.time()
            changes = await sub.wait(min(RECHECK, max(0.0, self.keepalive - idle)))
            if changes:
                heard = dict.fromkeys(change.execution_id for change in changes)
                due = [m for m in heard if m not in finished and await family.joins(m)]
            else:  # quiet: in case a hint was lost, one read of where the family stands
                progress = await family.progress()
                due = [
                    m
                    for m in family.members
                    if m not in finished and _moved(progress.get(m), sent.get(m, 0))
                ]

    async def _all(
        self, workflow: str | None, sub: Subscription, opened: datetime
    ) -> AsyncIterator[StreamItem]:
        loop = asyncio.get_running_loop()
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
            raise await missing_execution(self._engine.store, execution_id)
        return row


def _moved(row: Row | None, sent: int) -> bool:
    """A family member to read again: it has events not sent yet, it has ended (read once
    more, then finished), or it is gone (``row`` None: the read finds it gone)."""
    return row is None or int(row["event_seq"]) > sent or _terminal(row)


def _terminal(row: Row) -> bool:
    return ExecutionStatus(row["runtime_status"]).terminal


def _remember(sent: dict[str, int], execution_id: str, seq: int) -> None:
    sent.pop(execution_id, None)
    sent[execution_id] = seq  # most recent last: the oldest is forgotten first
    while len(sent) > MAX_TRACKED:
        del sent[next(iter(sent))]
