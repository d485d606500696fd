"""Execution documents as the JSON bytes the HTTP face sends, kept per execution with
the rows they were built from.

Every read still reads the rows from the database (one point read: the execution and
its steps); when they equal the rows kept, the bytes built from them are sent again
instead of shaping and encoding the same document anew. A document is a pure function
of its rows, so this is never stale: a change committed anywhere, by any process, is in
the rows the next read sees.
"""

from __future__ import annotations

from pydantic_core import to_json

from flowledger.app.pending import document_of, signals_waiting
from flowledger.runtime.documents import execution_document, waits_on_children
from flowledger.runtime.engine import Engine
from flowledger.runtime.missing import missing_execution
from flowledger.storage.base import Row

#: Documents kept at most (a few MiB); past it, the oldest half is forgotten.
KEPT = 1024


class EncodedDocuments:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._kept: dict[str, tuple[Row, list[Row], bytes]] = {}

    async def execution(self, execution_id: str) -> bytes:
        """The execution's document (with its steps) as JSON; NotFoundError if none."""
        found = await self._engine.store.read_execution(execution_id)
        if found is None:
            raise await missing_execution(self._engine.store, execution_id)
        row, steps = found
        # Its document reads more: its descendants' rows, what it was sent and not taken.
        if waits_on_children(row, steps) or signals_waiting(row):
            return to_json((await document_of(self._engine, row, steps))[0])
        kept = self._kept.get(execution_id)
        if kept is not None and kept[0] == row and kept[1] == steps:
            return kept[2]
        encoded = to_json(execution_document(row, steps))
        if len(self._kept) >= KEPT:
            for key in list(self._kept)[: KEPT // 2]:
                del self._kept[key]
        self._kept[execution_id] = (row, steps, encoded)
        return encoded
