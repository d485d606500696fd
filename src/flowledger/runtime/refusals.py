"""A worker's refusal of a workflow version whose step types it has not loaded, kept in
the database (``flowledger_meta``, one row per version: no migration) so that ``executions
show`` and ``watch`` say why an execution stays queued while a worker runs (tour 25: only
that worker's log said so)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from flowledger.runtime.orphans import owner_is_dead
from flowledger.storage.base import Store
from flowledger.timeutil import iso

#: ``flowledger_meta`` keys are at most 64 characters: this and a version id (36) fit.
_KEY_PREFIX = "refused:"


@dataclass(frozen=True)
class Refusal:
    """A worker (``worker``: its lease owner name) found it lacks ``missing`` at ``at``."""

    missing: tuple[str, ...]
    worker: str
    at: datetime

    @property
    def worker_words(self) -> str:
        """``host:pid`` of the refusing worker, as a person finds it (no boot id)."""
        host, _, rest = self.worker.partition(":")
        pid = rest.partition(":")[0]
        return f"{host.partition('~')[0]}:{pid}" if pid else host.partition("~")[0]


async def record_refusal(store: Store, version_id: str, refusal: Refusal) -> None:
    """Keep ``refusal`` as the latest for workflow version ``version_id``."""
    value = {"missing": list(refusal.missing), "worker": refusal.worker, "at": iso(refusal.at)}
    await store.put_meta_value(_KEY_PREFIX + version_id, json.dumps(value))


async def live_refusal(store: Store, version_id: str) -> Refusal | None:
    """The latest refusal of ``version_id`` by a worker that may still run (one on this
    host that has ended refuses nothing any more), or None."""
    found = await store.meta_value(_KEY_PREFIX + version_id)
    if found is None:
        return None
    try:
        value = json.loads(found)
        refusal = Refusal(
            tuple(value["missing"]), str(value["worker"]), datetime.fromisoformat(value["at"])
        )
    except (ValueError, KeyError, TypeError):
        return None  # written by another version of this code: nothing to say
    return None if owner_is_dead(refusal.worker) else refusal
