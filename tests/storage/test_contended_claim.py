"""Many claimers released at once on one claimable execution: exactly one wins, every time.

Each claimer is a thread with its own store (its own connection) and event loop; a
barrier releases them together, and the barrier's action, run once per trial after
every claimer has answered, tallies the winners and frees the execution again.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from flowledger.storage import open_store
from flowledger.storage.sql import SQLStore
from tests.storage.conftest import join_all, new_execution

pytestmark = pytest.mark.slow

#: Per backend; both together make the 2,000+ trials.
TRIALS = 1000
#: SQLite lets one writer in at a time, so extra claimers there only add lock waits.
CLAIMERS = {"sqlite": 4, "postgresql": 8}
LEASE = timedelta(minutes=5)
T = TypeVar("T")


class Claimer(threading.Thread):
    def __init__(self, url: str, index: int, race: Race) -> None:
        super().__init__(name=f"claimer-{index}", daemon=True)
        self.index = index
        self.race = race
        self.loop = asyncio.new_event_loop()
        store = open_store(url)
        assert isinstance(store, SQLStore)
        self.store = store
        self.error: BaseException | None = None

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def run(self) -> None:
        try:
            self.call(self.store.initialize())  # connected before the first race
            for _ in range(self.race.trials):
                self.race.start.wait()
                won = self.call(self.store.claim_executions(f"w{self.index}", 5, LEASE))
                self.race.results[self.index] = won
                self.race.done.wait()
        except BaseException as exc:  # a failing claimer must not leave the others waiting
            self.error = exc
            self.race.start.abort()
            self.race.done.abort()
        finally:
            self.call(self.store.close())
            self.loop.close()


class Race:
    def __init__(self, execution_id: str, trials: int, claimers: int) -> None:
        self.execution_id = execution_id
        self.claimers = claimers
        self.trials = trials
        self.results: list[list[tuple[str, int]]] = [[] for _ in range(claimers)]
        self.winners: list[int] = []  # per trial: how many claimers won
        self.epochs: list[int] = []  # per trial: the winner's fencing token
        self.start = threading.Barrier(claimers, timeout=60)
        self.done = threading.Barrier(claimers, action=self._settle, timeout=60)

    def _settle(self) -> None:
        won = [r for r in self.results if r]
        self.winners.append(len(won))
        claimer = threading.current_thread()
        assert isinstance(claimer, Claimer)
        for [(execution_id, epoch)] in won:
            assert execution_id == self.execution_id
            self.epochs.append(epoch)
            claimer.call(claimer.store.release_lease(execution_id, epoch))
        self.results = [[] for _ in range(self.claimers)]


async def test_exactly_one_of_many_simultaneous_claimers_wins(store: SQLStore) -> None:
    execution_id = await new_execution(store)
    race = Race(execution_id, TRIALS, CLAIMERS[store.url.split(":")[0]])
    claimers = [Claimer(store.url, i, race) for i in range(race.claimers)]
    for claimer in claimers:
        claimer.start()
    await asyncio.to_thread(join_all, claimers)
    assert [c.error for c in claimers if c.error] == []
    assert race.winners == [1] * TRIALS
    # Every win took the lease from the one before it: no claim went unrecorded.
    assert race.epochs == list(range(1, TRIALS + 1))
    row = await store.get_execution(execution_id)
    assert row is not None and row["lease_epoch"] == TRIALS
