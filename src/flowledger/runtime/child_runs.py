"""Children of an execution run here (a ``run``, a ``drive``): driven beside their parent.

A ``flowledger run`` runs the children its sub-workflow steps start in its own process,
as its users expect; while another process holds one, it is watched until that holder is
gone (then taken over) or the parent's run here ends. A cancel sent to children is
looked at at once by the runs here that hold them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, Protocol

from flowledger.errors import (
    EngineClosedError,
    LeaseLostError,
    MissingStepTypesError,
    StorageError,
)
from flowledger.logs import log_extra
from flowledger.runtime.orphans import owner_is_dead
from flowledger.runtime.runner import ExecutionRunner
from flowledger.runtime.running import RunsHere
from flowledger.runtime.status import ExecutionStatus
from flowledger.storage import Store

log = logging.getLogger(__name__)


class Drive(Protocol):
    """The engine's drive of one execution (Driving.drive)."""

    def __call__(
        self, execution_id: str, document: bool, *, steal_from: str | None = None
    ) -> Awaitable[Mapping[str, Any]]: ...


class ChildRuns:
    """Drives the children of the parents run here; ``store`` is the engine's."""

    def __init__(
        self, runs: RunsHere, drive: Drive, store: Callable[[], Store], lease: timedelta
    ) -> None:
        self._runs = runs
        self._drive = drive
        self._store = store
        self._lease = lease

    def run(
        self,
        ids: list[str],
        parent: ExecutionRunner,
        tasks: set[asyncio.Task[None]],
        over: asyncio.Event,
    ) -> None:
        for child_id in ids:
            task = asyncio.create_task(self._run_child(child_id, parent, over))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    def tell_cancelled(self, ids: list[str], tasks: set[asyncio.Task[None]] | None) -> list[str]:
        """Children were just sent a cancel: one run here looked at it as the commit that
        sent it came back (Store.hear_signals), and under a `run` (``tasks``: its
        children's runs) one parked (waiting for a person or a timer) is run here to apply
        it. Returns the others: their holders see it as told (PostgreSQL) or at their next
        look, a worker claims a parked one."""
        elsewhere = []
        for child_id in ids:
            entry = self._runs.by_id.get(child_id)
            if entry is not None and entry.runner is not None:
                continue
            if entry is None and tasks is not None:
                task = asyncio.create_task(self._apply_cancel_here(child_id))
                tasks.add(task)  # the parent's run waits for it before it returns
                task.add_done_callback(tasks.discard)
            else:
                elsewhere.append(child_id)
        return elsewhere

    async def _apply_cancel_here(self, child_id: str) -> None:
        try:
            await self._drive(child_id, False)
        except (StorageError, MissingStepTypesError) as exc:  # held elsewhere, closed, no plugin
            log.info(
                "child execution %s was sent a cancel it is left to apply: %s",
                child_id,
                exc,
                extra=log_extra("run_child", child_id),
            )
        except Exception:
            log.exception(
                "child execution %s stopped with an error while applying its cancel",
                child_id,
                extra=log_extra("run_child", child_id),
            )

    async def _run_child(self, child_id: str, parent: ExecutionRunner, over: asyncio.Event) -> None:
        """Drive a child of ``parent`` here, or, while another process holds it, watch it
        until that holder is gone (then take it over) or ``over``: the parent's run here
        ended, and nothing here waits for the child any more."""
        try:
            steal_from = None
            # A child taken from a dead holder is driven even once its parent ended (the
            # parent's cancel reached it): before 2026-12 the take came first and the loop
            # then stopped, leaving the child leased to this engine and run by nobody.
            while steal_from is not None or not (parent.status.terminal or over.is_set()):
                try:
                    await self._drive(child_id, False, steal_from=steal_from)
                    return
                except EngineClosedError:  # given back with its parent: nothing to wait for
                    return
                except (StorageError, LeaseLostError):
                    # Another process holds it: its end reaches the parent as a signal. If
                    # that process died (a killed `run` on this host: its pid is gone),
                    # this one takes the child over now; elsewhere, once the lease lapses.
                    row = await self._store().get_execution(child_id)
                    if row is None or ExecutionStatus(row["runtime_status"]).terminal:
                        return
                    holder = row["lease_owner"]
                    if holder != steal_from and owner_is_dead(holder):
                        steal_from = holder
                        continue
                    steal_from = None
                    # Its holder lives (or seems to: a killed pid not yet reaped): look
                    # again later, or stop once the parent's run ends. Before, that end
                    # waited CHILD_GRACE (10 s) for this sleep: a cancel of the parent from
                    # the command line took 11 s, its children taken over only after.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(over.wait(), self._lease.total_seconds() / 2)
        except MissingStepTypesError as exc:
            # Its plugin is not loaded here (a cancel from the command line without it):
            # no traceback, which said nothing more; a cancel it was sent is applied by
            # the command's pass over the descendants (app.executions), else a worker runs it.
            # INFO: a cancel's command line printed it as a warning that the child was
            # left, over the children it then cancelled (tour 21).
            log.info(
                "child execution %s is not run here, its step types not loaded (%s): a "
                "cancel sent to it still applies; the rest waits for a process that has them",
                child_id,
                exc.problems[0].message if exc.problems else exc,
                extra=log_extra("run_child", child_id),
            )
            parent.drain()
        except Exception:
            log.exception(
                "child execution %s stopped with an error",
                child_id,
                extra=log_extra("run_child", child_id),
            )
            # Nothing here runs that child now, so the parent would wait for it for ever
            # (`run` hung): it finishes what is running and returns, left for a worker.
            parent.drain()
        finally:
            parent.poke()
