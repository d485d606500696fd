"""Retention: prune finished executions (``flowledger executions prune``); the workers'
``retention`` duty runs the same code (runtime.pruning)."""

from __future__ import annotations

from flowledger.app.models import PruneExecutions
from flowledger.app.results import PruneResult
from flowledger.runtime.engine import Engine
from flowledger.runtime.pruning import prune
from flowledger.timeutil import iso


class Retention:
    """The pruning operation of one application (see :class:`flowledger.app.App`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def prune(self, request: PruneExecutions) -> PruneResult:
        """Delete (``dry_run``: count) finished executions that ended more than
        ``older_than`` ago, with their steps, events, signals, step logs and artifacts
        (files too); never unfinished ones, nor a parent while a child of it remains."""
        pruned = await prune(
            self._engine,
            request.older_than,
            [str(s) for s in request.statuses],
            batch_size=request.batch_size,
            dry_run=request.dry_run,
        )
        return {
            "dryRun": request.dry_run,
            "before": iso(pruned.before),
            "executions": pruned.executions,
            "batches": pruned.batches,
            "artifactFolders": pruned.artifact_folders,
        }
