"""Pruning: delete finished executions older than an age, with everything they hold.

One code path for ``flowledger executions prune`` (through the application layer) and
for the workers' retention duty (``FLOWLEDGER_RETENTION``). Executions go in batches of
``batch_size``, each batch one short transaction (found, then locked, re-checked and
deleted: an execution that a retry moved back to InProgress meanwhile is left alone),
children before their parents (a parent is never deleted while a child of it remains),
and their artifact files after their rows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from flowledger.logs import log_extra
from flowledger.runtime.engine import Engine
from flowledger.storage.schema import FINISHED

log = logging.getLogger(__name__)

#: Most batches one call deletes before returning (the duty comes back for the rest).
MAX_BATCHES = 10_000


@dataclass(frozen=True)
class Pruned:
    before: datetime
    executions: int
    batches: int
    artifact_folders: int


async def prune(
    engine: Engine,
    older_than: timedelta,
    statuses: Sequence[str] = (),
    *,
    batch_size: int = 100,
    dry_run: bool = False,
    max_batches: int = MAX_BATCHES,
) -> Pruned:
    """Delete (or with ``dry_run`` count) the finished executions, in ``statuses`` when
    given, whose last activity is more than ``older_than`` before the database's now."""
    store = engine.store
    before = engine.clock.now() - older_than
    chosen = [s for s in (statuses or FINISHED) if s in FINISHED]
    if dry_run:
        return Pruned(before, await store.count_prunable(before, chosen), 0, 0)
    deleted = batches = folders = 0
    while batches < max_batches:
        ids = await store.prunable_executions(before, chosen, batch_size)
        if not ids:
            break
        gone = await store.delete_executions(ids, before, chosen)
        batches += 1
        deleted += len(gone)
        for execution_id in gone:
            folders += await asyncio.to_thread(engine.artifacts.remove_files, execution_id)
        if not gone:  # every one found changed meanwhile (a retry): look again later
            break
        await asyncio.sleep(0)  # let the rest of this process (running steps) in between
    if deleted:
        log.info(
            "pruned %d executions that ended before %s (%d batches)",
            deleted,
            before.isoformat(),
            batches,
            extra=log_extra("prune"),
        )
    return Pruned(before, deleted, batches, folders)
