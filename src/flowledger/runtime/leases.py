"""Keeping leases alive: a heartbeat that renews every execution this process runs.

A lease lapses when its holder stops renewing it (killed, frozen, cut off); then
another worker may claim the execution, and the old holder's writes are refused
by the fencing epoch. The heartbeat also re-measures the database clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from flowledger.errors import StorageError
from flowledger.logs import exception_line, log_extra
from flowledger.storage.base import Store
from flowledger.timeutil import Clock

log = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(
        self,
        store: Store,
        owner: str,
        lease: timedelta,
        clock: Clock,
        on_lost: Callable[[str], None],
    ) -> None:
        self.store = store
        self.owner = owner
        self.lease = lease
        self.clock = clock
        self.on_lost = on_lost
        self.held: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def interval(self) -> float:
        # Three chances to renew before the lease lapses.
        return self.lease.total_seconds() / 3

    def hold(self, execution_id: str, epoch: int) -> None:
        self.held[execution_id] = epoch

    def drop(self, execution_id: str, epoch: int | None = None) -> None:
        """Stop renewing ``execution_id`` (only its ``epoch``, when given: a newer hold of
        the same execution in this process stays)."""
        if epoch is None or self.held.get(execution_id) == epoch:
            self.held.pop(execution_id, None)

    async def beat(self) -> None:
        if not self.held:
            return  # idle: no query at all (the clock is re-measured when work arrives)
        self.clock.synchronize(await self.store.db_now())
        asked = dict(self.held)
        still = await self.store.renew_leases(self.owner, asked, self.lease)
        for execution_id in asked:
            if execution_id not in still and execution_id in self.held:
                log.warning(
                    "lost the lease of execution %s",
                    execution_id,
                    extra=log_extra("renew_lease", execution_id),
                )
                self.drop(execution_id)
                self.on_lost(execution_id)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.beat()
            except Exception as exc:  # a failed heartbeat must not kill the worker
                if database_trouble(exc):  # locked, restarting, unreachable: said in a line
                    log.warning(
                        "lease heartbeat failed (%s); the next one tries again",
                        exception_line(exc),
                        extra=log_extra("renew_lease"),
                    )
                else:
                    log.exception("lease heartbeat failed", extra=log_extra("renew_lease"))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="lease heartbeat")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        current = asyncio.current_task()
        # Counted before: a cancel the caller took already (a drive cancelled midway, now
        # letting go in its finally) is not one that came while this waited. Counting
        # it re-raised here, and the drive skipped releasing its execution: cancelled
        # (Ctrl-C, a crash-like stop in a test) it stayed leased to a live owner, which
        # another Engine in the process could not take until the lease lapsed.
        before = current.cancelling() if current is not None else 0
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            # The heartbeat's own cancellation ends here. The caller's, had it come while
            # this waited (a drive cancelled as it lets go), must go on up.
            if current is not None and current.cancelling() > before:
                raise


def database_trouble(exc: BaseException) -> bool:
    """Whether ``exc`` is the database's (a lock held too long, a server restarting),
    an operating condition to report in a line, not a bug to report with a traceback.
    The store raises those as StorageError where they arise (storage.sqlpart's
    DatabaseTrouble around the heartbeat's calls; its lease group's claims, takes and
    releases and its group commit's rounds answer every failure so), so the driver's
    own types are no business of the runtime's."""
    return isinstance(exc, StorageError)
