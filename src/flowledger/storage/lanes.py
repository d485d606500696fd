"""Store calls off the event loop: worker threads, each holding its own connection.

A store method's body is plain synchronous SQLAlchemy; the method hands it to a
*lane* and awaits an asyncio future. The event loop never runs SQL, so a slow
query (or SQLite waiting for another process's write lock) delays only the task
that asked for it, never the lease heartbeat or any other task.

A SQLStore has two lanes (see ``SQLStore.__init__``): one writer thread, which
runs every write in order (SQLite lets one writer in at a time anyway, and a
single FIFO writer keeps the group commit's one-transaction-per-flush shape), and
a few reader threads for reads, which never queue behind the writer (SQLite WAL:
a DEFERRED read transaction takes no lock; PostgreSQL: MVCC).

Why threads and not SQLAlchemy's async engine. Measured on this machine (2 CPUs,
Python 3.11, SQLite WAL synchronous=NORMAL, one small write transaction: BEGIN
IMMEDIATE, an INSERT, an UPDATE, COMMIT; best of 3 runs of 3,000):

    inline on the loop (the old code)                 25.5 us
    this lane (own thread, SimpleQueue, and
      call_soon_threadsafe back to the loop)          40.5 us   (+15 us per call)
    loop.run_in_executor(ThreadPoolExecutor(1))       58.0 us   (+33 us)
    create_async_engine("sqlite+aiosqlite")          317.2 us   (12x: a thread hop and a
                                                                 greenlet switch per statement)

The async engine pays a hop per statement where a lane pays one per transaction,
and it would need the writes' raw-cursor ``executemany`` fast path rebuilt; the
lane is also leaner than ``asyncio.to_thread``/``run_in_executor`` (no
concurrent.futures.Future chained to an asyncio one). So: lanes.

In the engine (bench/engine_bench.py, ms per step, medians of 5 interleaved runs,
same session; "executor" is this module with run_in_executor in place of the lane):

    scenario                 old code   lanes   executor   lanes + inline round
    chain of 1,000 custom      0.236    0.327     0.351        0.195
    chain of 1,000 pure        0.051    0.055     0.055        0.055
    fan-out 1,000 custom       0.071    0.073     0.073        0.073
    fan-out 1,000 pure         0.051    0.054     0.056        0.055

A hop costs ~25 us on a busy machine but ~110 us on an idle VM (two idle vCPUs
to wake); a lone execution's chain pays one per round. Hence the one exception,
SQLiteStore._commit_inline: a small lone round commits on the loop when nothing in
it can wait. So does a small group of rounds (storage.groupcommit): a worker that takes
executions one at a time, as they are started, groups a few rounds a transaction, and
the hops were a quarter of its time.

Per-call cost of short executions. Running 1,000 short executions one after another
paid 7 hops each (4 reads, create/acquire/release): 0.88 -> 1.37 ms per step on the
idle VM. Two changes took that back: the engine makes fewer calls (runtime.driving,
its drive: the acquire and the release answer with the row, a run drives the row it
created), and on SQLite the calls below run inline when, and only when, they cannot
wait. The rule (SQLPart ``point_read``/``small_write``, SQLiteStore ``_inline_read``/
``_inline_write``; tests in tests/storage/test_offloop.py):

Inline point reads (``@point_read``: one row by primary key, e.g. ``get_execution``)
run on a connection of the loop's own (opened off the loop, used by the loop's thread
only), with busy_timeout 0:
- A WAL read never waits for the writer (it reads a snapshot: the WAL's committed
  frames plus the file); PASSIVE checkpoints (ours, and SQLite's autocheckpoint) never
  make a reader wait either.
- What can make a WAL read wait is a lock: another process recovering the WAL after a
  crash, holding the file in exclusive locking mode, or resetting the WAL. With
  busy_timeout 0 SQLite answers SQLITE_BUSY at once instead of waiting; the call then
  goes to a reader thread (nothing was read: a read has no effects to undo).
- One row by key is a B-tree descent of a few pages, in SQLite's and the OS's page
  cache in the steady state: CPU work the size of the answer. WAL needs the file on a
  local disk (its shared memory), so a page miss is a local read, never a network one.
- Never on PostgreSQL: every statement is a network round trip, which can always wait
  (PostgresStore keeps the defaults: every call goes to its lane). Never in memory
  (one connection, on the writer lane), nor for reads of many rows (the steps of an
  execution, lists), nor from a thread other than the loop's that opened the store.
  The one exception, documents (``read_execution``: a row and its steps, found by key
  and index; the loop builds the document from them anyway), read up to
  ``coalesce.INLINE_MOST`` executions asked for in one turn together (storage.coalesce).
Inline small writes (``@small_write``, and a lease group's call, storage.leasegroup: new
executions, takes and releases, a row or two each) follow ``_commit_inline``'s rule: the
writer thread idle (its lock taken: the call shares its connection and overtakes
nothing), SQLite's write lock free at once (busy timeout 0: refused at BEGIN IMMEDIATE,
nothing written, and the call goes to the writer thread), synchronous=NORMAL (no
fsync), no checkpoint in it. A lease group is not capped: its callers all wait for it,
so the loop has nothing better to do than its CPU work.

A call that is cancelled while waiting is not undone: its body runs to its end
on its thread (a transaction is atomic either way) and the result is dropped.
Writes stay in submission order, so nothing written later overtakes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future as ThreadFuture
from queue import SimpleQueue
from typing import Any, TypeAlias, TypeVar

from flowledger.errors import StorageError
from flowledger.logs import log_extra

log = logging.getLogger(__name__)

T = TypeVar("T")

_Answer: TypeAlias = "asyncio.Future[Any] | ThreadFuture[Any] | None"
#: A call: its body, and where to answer (a loop and its future; no loop: a thread future;
#: no future: nobody waits, see ``post``).
_Job = tuple[Callable[[], Any], "asyncio.AbstractEventLoop | None", _Answer]


#: What an inline attempt (``SQLiteStore._inline_read`` and the like) returns when the call
#: must go to its lane after all.
NOT_HERE: Any = object()


def _exit() -> None:
    """The job that tells one worker thread to leave (it still answers its future)."""


class Lane:
    """``size`` threads taking calls from one queue, started by the lane's first call."""

    def __init__(self, name: str, size: int, *, lock: threading.Lock | None = None) -> None:
        if size < 1:
            raise ValueError("a lane needs at least one thread")
        self.name = name
        self.size = size
        #: Given: held by the thread while it runs a call, so whoever else holds it (see
        #: ``SQLiteStore._commit_inline``) knows the lane runs nothing. For one thread only:
        #: it would serialize a lane of several.
        self.lock = lock
        if lock is not None and size != 1:
            raise ValueError("only a one-thread lane takes a lock")
        self._queue: SimpleQueue[_Job] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        self._closed = False

    def run(self, body: Callable[[], T]) -> asyncio.Future[T]:
        """Run ``body`` on a thread of this lane; the future resolves on the caller's loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._submit((body, loop, future))
        return future

    def run_blocking(self, body: Callable[[], T]) -> T:
        """Run ``body`` on this lane and wait for it here (for the rare caller that cannot
        await). Safe from the loop thread: a lane's threads never wait for the loop."""
        if threading.current_thread() in self._threads:
            return body()  # already on this lane: queueing behind ourselves would deadlock
        future: ThreadFuture[T] = ThreadFuture()
        self._submit((body, None, future))
        return future.result()

    async def on_each_thread(self, body: Callable[[], object]) -> None:
        """Run ``body`` once on every thread of the lane (best effort: a thread still busy
        after a second is left out), e.g. to open each thread's connection up front."""
        if self.size == 1:
            await self.run(body)
            return
        meet = threading.Barrier(self.size)

        def once() -> None:
            body()
            # Hold this thread until the others have each taken one, so none takes two.
            with contextlib.suppress(threading.BrokenBarrierError):
                meet.wait(timeout=1.0)

        await asyncio.gather(*(self.run(once) for _ in range(self.size)))

    def post(self, body: Callable[[], object]) -> None:
        """Run ``body`` on this lane with nobody waiting for it (errors are logged).
        Ignored once the lane is closed."""
        if not self._closed:
            self._submit((body, None, None))

    def _submit(self, job: _Job) -> None:
        if self._closed:
            raise StorageError("the store is closed")
        self._queue.put(job)
        if not self._threads:
            self._start()

    def _start(self) -> None:
        # All at once: counting idle threads to start them one by one costs a semaphore
        # round per call, on the hot path. A thread connects on its first query only.
        with self._start_lock:
            if self._threads:
                return
            threads = [
                threading.Thread(target=self._work, name=f"{self.name}-{i}", daemon=True)
                for i in range(self.size)
            ]
            for thread in threads:
                thread.start()
            self._threads = threads

    def idle(self) -> bool:
        """Nothing queued (a call may still be running: hold ``lock`` to exclude that)."""
        return self._queue.empty()

    def _work(self) -> None:
        queue, lock = self._queue, self.lock
        while True:
            body, loop, future = queue.get()
            try:
                if lock is None:
                    result = body()
                else:
                    with lock:
                        result = body()
            except Exception as exc:
                _deliver(loop, future, None, exc)
            else:
                _deliver(loop, future, result, None)
            if body is _exit:
                return
            del body, loop, future  # keep nothing of a finished call alive while idle

    async def close(self) -> None:
        """Let every thread finish what is queued, then leave; returns when all have left.
        Waits on the loop (not by blocking it) for a call still running."""
        if self._closed:
            return
        self._closed = True
        threads = list(self._threads)
        loop = asyncio.get_running_loop()
        waits: list[asyncio.Future[Any]] = []
        for _ in threads:
            future: asyncio.Future[Any] = loop.create_future()
            self._queue.put((_exit, loop, future))
            waits.append(future)
        await asyncio.gather(*waits)
        for thread in threads:
            thread.join()  # each has answered its exit job: this returns at once


def _deliver(
    loop: asyncio.AbstractEventLoop | None,
    future: _Answer,
    result: Any,
    error: Exception | None,
) -> None:
    if future is None:
        if error is not None:
            log.error(
                "background storage work failed",
                exc_info=error,
                extra=log_extra("background_storage"),
            )
        return
    if loop is None:
        assert isinstance(future, ThreadFuture)
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
        return
    assert isinstance(future, asyncio.Future)
    # RuntimeError: the caller's loop is closed, so nobody waits for this answer.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_settle, future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: Exception | None) -> None:
    if future.done():  # its waiter was cancelled meanwhile
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
