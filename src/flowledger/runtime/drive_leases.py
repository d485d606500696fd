"""The lease heartbeat of the executions an engine's drives run: one for all of them.

Started by the first drive that holds a lease and stopped after the last, it renews
them all in one transaction (as a worker's does) and tells the drive whose lease
another process took.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flowledger.runtime.leases import LeaseKeeper
from flowledger.storage import Store
from flowledger.timeutil import Clock


class DriveLeases:
    """The heartbeat of ``owner``'s drives; ``store`` is the engine's."""

    def __init__(
        self, store: Callable[[], Store], owner: str, lease: timedelta, clock: Clock
    ) -> None:
        self._store = store
        self._owner = owner
        self._lease = lease
        self._clock = clock
        #: The heartbeat of the executions drives run right now, and who to tell (by
        #: execution id) when one's lease was lost.
        self.keeper: LeaseKeeper | None = None
        self.losers: dict[str, Callable[[], None]] = {}

    def hold(self, execution_id: str, epoch: int, lost: Callable[[], None]) -> LeaseKeeper:
        """Keep the lease of an execution a drive runs alive (``lost``: what to do when
        another process took it)."""
        keeper = self.keeper
        if keeper is None:
            keeper = LeaseKeeper(self._store(), self._owner, self._lease, self._clock, self._lost)
            self.keeper = keeper
            keeper.start()
        keeper.hold(execution_id, epoch)
        self.losers[execution_id] = lost
        return keeper

    async def let_go(
        self, keeper: LeaseKeeper, execution_id: str, epoch: int, lost: Callable[[], None]
    ) -> None:
        # Only our own hold: a second drive of the same execution here took a newer epoch.
        keeper.drop(execution_id, epoch)
        if self.losers.get(execution_id) is lost:
            del self.losers[execution_id]
        if not keeper.held and self.keeper is keeper:
            self.keeper = None
            await keeper.stop()

    def _lost(self, execution_id: str) -> None:
        lost = self.losers.pop(execution_id, None)
        if lost is not None:
            lost()
