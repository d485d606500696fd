"""Background duties of a worker besides running executions: schedules, entity events,
job runs, outbound webhook deliveries, retention."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from flowledger.logs import log_extra
from flowledger.runtime.engine import Engine
from flowledger.runtime.orphans import owner_is_dead, this_host
from flowledger.runtime.pruning import prune

log = logging.getLogger(__name__)

#: Seconds between two retention rounds once nothing is left to prune.
EVERY = 300.0
#: Batches one retention round deletes at most.
ROUND_BATCHES = 10


class Duty(Protocol):
    name: str
    #: Whether the delay ``run_once`` returns is the duty's own pace, kept as it is. Else
    #: the worker looks again within ``max_duty_wait`` whatever it said (a schedule or a
    #: subscription added by another process is seen within that).
    paced: bool

    async def run_once(self) -> float:
        """Do what is due now; return how many seconds until it wants to run again."""
        ...


class RetentionDuty:
    """Deletes finished executions older than the ``retention`` setting
    (``FLOWLEDGER_RETENTION``), with everything they hold (runtime.pruning): a few
    batches per round, so a large backlog never holds the worker's duties up for long."""

    name = "retention"
    paced = True

    def __init__(self, engine: Engine, retention: timedelta, *, every: float = EVERY) -> None:
        self.engine = engine
        self.retention = retention
        self.every = every

    async def run_once(self) -> float:
        pruned = await prune(self.engine, self.retention, max_batches=ROUND_BATCHES)
        # A full round means more is due: come back soon rather than after ``every``.
        return 0.0 if pruned.batches >= ROUND_BATCHES else self.every


#: Seconds between two looks for executions held by dead processes on this host.
DEAD_HOLDERS_EVERY = 2.0


class DeadHoldersDuty:
    """Frees the executions a process on this host left leased when it died (a killed
    ``flowledger run``, ``jobs run`` or worker): a dead pid proves nobody runs them, so
    their lease is given up at once instead of lapsing (30 s by default), and
    ``on_freed`` tells the worker to claim. Holders on other hosts wait for their lease:
    only this host can see its processes."""

    name = "dead-holders"
    paced = True

    def __init__(
        self, engine: Engine, on_freed: Callable[[], None], *, every: float = DEAD_HOLDERS_EVERY
    ) -> None:
        self.engine = engine
        self.on_freed = on_freed
        self.every = every
        self.host = this_host()

    async def run_once(self) -> float:
        store = self.engine.store
        freed = 0
        for execution_id, holder in await store.leases_held_on(self.host, 100):
            if not owner_is_dead(holder):
                continue
            epoch = await store.acquire_lease(
                execution_id, self.engine.owner, self.engine.lease, steal_from=holder
            )
            if epoch is not None:  # taken from the dead (compare-and-set), then given up
                await store.release_lease(execution_id, epoch)
                freed += 1
        if freed:
            log.info(
                "freed %d executions whose holder on this host died",
                freed,
                extra=log_extra("free_dead_holders", count=freed),
            )
            self.on_freed()
        return self.every


#: Seconds between two looks at the database's schema revision.
SCHEMA_WATCH_EVERY = 30.0


class SchemaWatchDuty:
    """Stops a worker whose build no longer matches the database's schema: a newer
    flowledger migrated it while this one ran (a rolling upgrade that missed a process).
    This build's SQL would write rows of the old shape, so ``on_changed`` (the worker's
    stop, with the reason) ends its claims; a restart on the new build carries on.
    One short read every ``every`` seconds."""

    name = "schema-watch"
    paced = True

    def __init__(
        self,
        engine: Engine,
        on_changed: Callable[[str], None],
        *,
        every: float = SCHEMA_WATCH_EVERY,
    ) -> None:
        self.engine = engine
        self.on_changed = on_changed
        self.every = every

    async def run_once(self) -> float:
        problem = await self.engine.store.schema_problem()
        if problem is not None:
            self.on_changed(problem)
        return self.every
