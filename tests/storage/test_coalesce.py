"""Concurrent single-key reads fold into reads of many keys, at most ``width`` at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Collection

import pytest

from flowledger.storage.coalesce import INLINE_MOST, Coalescer
from flowledger.storage.lanes import NOT_HERE, Lane

STORED = {f"k{i}": i for i in range(100)}


class Reads:
    """A many-key read of STORED that records its batches and can be held at its start."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, ...]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Semaphore(0)
        self.fail_with: Exception | None = None

    def __call__(self, keys: Collection[str]) -> dict[str, int]:
        self.batches.append(tuple(keys))
        self.entered.release()
        assert self.gate.wait(10), "held too long"
        if self.fail_with is not None:
            raise self.fail_with
        return {key: STORED[key] for key in keys if key in STORED}


@pytest.fixture
async def lane() -> AsyncIterator[Lane]:
    lane = Lane("test-readers", 2)
    yield lane
    await lane.close()


async def entered(reads: Reads, count: int) -> None:
    """Wait (off the loop) until ``count`` more reads have begun on the lane."""
    for _ in range(count):
        assert await asyncio.to_thread(reads.entered.acquire, True, 10)


async def test_a_lone_key_is_read_at_once_alone(lane: Lane) -> None:
    reads = Reads()
    coalescer = Coalescer(lane, reads, width=2)
    assert await coalescer.get("k1") == 1
    assert await coalescer.get("k2") == 2
    assert await coalescer.get("absent") is None
    assert reads.batches == [("k1",), ("k2",), ("absent",)]


async def test_keys_asked_while_every_read_runs_go_out_together(lane: Lane) -> None:
    reads = Reads()
    reads.gate.clear()
    coalescer = Coalescer(lane, reads, width=2)
    first = [asyncio.create_task(coalescer.get(key)) for key in ("k0", "k1")]
    await asyncio.sleep(0)
    await entered(reads, 1)  # both asked in one turn of the loop: one read of both
    second = asyncio.create_task(coalescer.get("k2"))
    await asyncio.sleep(0)
    await entered(reads, 1)  # a second read may run beside the first
    later = [asyncio.create_task(coalescer.get(key)) for key in ("k3", "k4", "k3", "absent")]
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(reads.batches) == 2, "no third read while two run"
    reads.gate.set()
    assert await asyncio.gather(*first, second, *later) == [0, 1, 2, 3, 4, 3, None]
    assert reads.batches[:2] == [("k0", "k1"), ("k2",)]
    # The four asked meanwhile: one read, each key once.
    assert reads.batches[2:] == [("k3", "k4", "absent")]


async def test_a_failed_read_fails_each_of_its_waiters_and_the_next_read_works(
    lane: Lane,
) -> None:
    reads = Reads()
    reads.gate.clear()
    reads.fail_with = RuntimeError("the database went away")
    coalescer = Coalescer(lane, reads, width=1)
    waiters = [asyncio.create_task(coalescer.get(key)) for key in ("k1", "k2", "k1")]
    await asyncio.sleep(0)
    await entered(reads, 1)
    reads.gate.set()
    for waiter in waiters:
        with pytest.raises(RuntimeError, match="went away"):
            await waiter
    reads.fail_with = None
    assert await coalescer.get("k1") == 1


async def test_a_cancelled_waiter_leaves_the_others_their_answer(lane: Lane) -> None:
    reads = Reads()
    reads.gate.clear()
    coalescer = Coalescer(lane, reads, width=1)
    running = asyncio.create_task(coalescer.get("k5"))
    await asyncio.sleep(0)
    await entered(reads, 1)
    gone = asyncio.create_task(coalescer.get("k6"))
    kept = asyncio.create_task(coalescer.get("k6"))
    await asyncio.sleep(0)
    gone.cancel()
    reads.gate.set()
    assert await running == 5
    assert await kept == 6
    with pytest.raises(asyncio.CancelledError):
        await gone


async def test_a_closed_lane_fails_the_read_instead_of_hanging() -> None:
    lane = Lane("test-closed", 1)
    await lane.close()
    coalescer = Coalescer(lane, Reads(), width=1)
    with pytest.raises(Exception, match="closed"):
        await asyncio.wait_for(coalescer.get("k1"), 5)


def test_another_loop_reads_alone_and_still_gets_its_answer() -> None:
    lane = Lane("test-loops", 1)
    reads = Reads()
    coalescer = Coalescer(lane, reads, width=1)

    async def one(key: str) -> int | None:
        return await coalescer.get(key)

    assert asyncio.run(one("k7")) == 7
    assert asyncio.run(one("k8")) == 8  # a second loop: read on its own, not folded
    asyncio.run(lane.close())
    assert reads.batches == [("k7",), ("k8",)]


class Inline:
    """An inline runner (SQLiteStore._inline_read's part): runs the job on the calling
    thread, or answers NOT_HERE (the read then goes to the lane) while ``refuse`` is set."""

    def __init__(self) -> None:
        self.refuse = False
        self.threads: list[int] = []

    def __call__(self, job: Callable[[], object]) -> object:
        if self.refuse:
            return NOT_HERE
        self.threads.append(threading.get_ident())
        return job()


async def test_inline_reads_run_on_the_loop_one_read_per_turn(lane: Lane) -> None:
    reads, inline = Reads(), Inline()
    coalescer = Coalescer(lane, reads, width=1, inline=inline)
    first = await asyncio.gather(*(coalescer.get(k) for k in ("k1", "k2", "k1", "absent")))
    assert first == [1, 2, 1, None]
    assert await coalescer.get("k3") == 3
    assert reads.batches == [("k1", "k2", "absent"), ("k3",)]
    assert inline.threads == [threading.get_ident()] * 2


async def test_an_inline_read_that_would_wait_goes_to_the_lane(lane: Lane) -> None:
    reads, inline = Reads(), Inline()
    inline.refuse = True
    coalescer = Coalescer(lane, reads, width=1, inline=inline)
    assert await asyncio.gather(coalescer.get("k4"), coalescer.get("k5")) == [4, 5]
    assert reads.batches == [("k4", "k5")] and inline.threads == []


async def test_an_inline_read_that_fails_fails_its_waiters(lane: Lane) -> None:
    reads = Reads()
    reads.fail_with = RuntimeError("disk gone")
    coalescer = Coalescer(lane, reads, width=1, inline=Inline())
    results = await asyncio.gather(coalescer.get("k1"), coalescer.get("k2"), return_exceptions=True)
    assert [str(r) for r in results] == ["disk gone", "disk gone"]
    reads.fail_with = None
    assert await coalescer.get("k1") == 1  # the next read is not held up by the failed one


async def test_inline_reads_take_at_most_so_many_keys_a_turn(lane: Lane) -> None:
    reads = Reads()
    coalescer = Coalescer(lane, reads, width=1, inline=Inline())
    keys = [f"k{i}" for i in range(INLINE_MOST * 2 + 1)]
    assert await asyncio.gather(*(coalescer.get(k) for k in keys)) == [STORED.get(k) for k in keys]
    assert [len(b) for b in reads.batches] == [INLINE_MOST, INLINE_MOST, 1]
    assert [k for b in reads.batches for k in b] == keys
