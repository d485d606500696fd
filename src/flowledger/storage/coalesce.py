"""Concurrent reads of single keys folded into one read of many keys.

On PostgreSQL every read is a round trip and a statement the server parses, plans and
runs, and under many concurrent ``GET /executions/{id}`` that server work, not ours,
bounds the throughput (py-spy of ``flowledger serve`` under bench/api_bench.py: the reader
threads waiting on PostgreSQL, its backends busy on the same cores). A :class:`Coalescer`
lets at most ``width`` many-key reads run at once (one per reader thread); keys asked for
while they all run wait together and go out as the next read, one statement for all of
them (``= ANY(array)``). When the readers are idle a key goes out at once, alone: the
folding costs nothing at low load and grows with the load, the way a group commit does.

Each answer is read after its request arrived (a key joins only a read not yet sent), so
a reader sees every change committed before it asked, as with a read of its own.

On SQLite (``inline``) a read runs on the loop itself when it cannot wait (storage.lanes,
"Inline point reads"), else on the lane: the documents of executions that end together
(many ``run`` calls gathered on one engine) are read in one transaction, two statements,
instead of one each.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Collection, Mapping
from typing import Generic, TypeVar, cast

from flowledger.storage.lanes import NOT_HERE, Lane

#: Keys in one read run on the loop at most; more wait for the next turn, so what else is
#: due on the loop (a lease heartbeat) runs between two such reads. 64 documents of three
#: steps are ~2 ms of SQLite reads and row making (~29 us each, 50 read together).
INLINE_MOST = 64

K = TypeVar("K")
V = TypeVar("V")


class Coalescer(Generic[K, V]):
    """``await get(key)``: ``read_many(keys)[key]`` (None when absent), run on ``lane``,
    with at most ``width`` reads at once and the keys asked for meanwhile read together.
    For one event loop: the loop of its first call (others read alone).

    ``inline(job)``: runs ``job`` right here and returns its result, or NOT_HERE when it
    must go to the lane after all (SQLiteStore._inline_read). A read run inline holds the
    loop, so none runs beside it: only the lane's reads count against ``width``."""

    def __init__(
        self,
        lane: Lane,
        read_many: Callable[[Collection[K]], Mapping[K, V]],
        width: int,
        *,
        inline: Callable[[Callable[[], object]], object] | None = None,
    ) -> None:
        if width < 1:
            raise ValueError("a coalescer needs at least one read at a time")
        self._lane = lane
        self._read_many = read_many
        self._width = width
        self._inline = inline
        self._running = 0
        #: Keys asked for and not yet sent, each with its waiters.
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._send_scheduled = False

    async def get(self, key: K) -> V | None:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            job = functools.partial(self._read_many, (key,))
            done = self._inline(job) if self._inline is not None else NOT_HERE
            found = await self._lane.run(job) if done is NOT_HERE else done
            return cast("Mapping[K, V]", found).get(key)
        answer: asyncio.Future[V | None] = loop.create_future()
        self._waiting.setdefault(key, []).append(answer)
        if self._running < self._width and not self._send_scheduled:
            # On the next turn, not now: the requests this turn of the loop parses go
            # out together.
            self._send_scheduled = True
            loop.call_soon(self._send)
        return await answer

    def _send(self) -> None:
        self._send_scheduled = False
        if not self._waiting or self._running >= self._width:
            return
        batch, self._waiting = self._waiting, {}
        if self._inline is not None and len(batch) > INLINE_MOST:
            keys = list(batch)
            self._waiting = {key: batch.pop(key) for key in keys[INLINE_MOST:]}
            self._send_scheduled = True
            asyncio.get_running_loop().call_soon(self._send)
        job = functools.partial(self._read_many, tuple(batch))
        if self._inline is not None:
            try:
                done = self._inline(job)
            except Exception as exc:
                _fail(batch, exc)
                return
            if done is not NOT_HERE:  # nobody asked meanwhile: the loop was ours
                _deliver(batch, cast("Mapping[K, V]", done))
                return
        self._running += 1
        try:
            read = self._lane.run(job)
        except BaseException as exc:  # the lane is closed: nothing was sent
            self._running -= 1
            _fail(batch, exc)
            return
        read.add_done_callback(functools.partial(self._answer, batch))

    def _answer(
        self, batch: dict[K, list[asyncio.Future[V | None]]], read: asyncio.Future[Mapping[K, V]]
    ) -> None:
        self._running -= 1
        if read.cancelled():  # nobody cancels a lane's future; were it done, so are these
            for answers in batch.values():
                for answer in answers:
                    answer.cancel()
        elif (error := read.exception()) is not None:
            _fail(batch, error)
        else:
            _deliver(batch, read.result())
        if self._waiting:
            self._send()


def _deliver(batch: Mapping[K, list[asyncio.Future[V | None]]], found: Mapping[K, V]) -> None:
    for key, answers in batch.items():
        value = found.get(key)
        for answer in answers:
            if not answer.done():  # a waiter gone meanwhile (cancelled) is skipped
                answer.set_result(value)


def _fail(batch: Mapping[K, list[asyncio.Future[V | None]]], error: BaseException) -> None:
    for answers in batch.values():
        for answer in answers:
            if not answer.done():
                answer.set_exception(error)
