"""Artifacts: the files an execution's steps saved (and outputs too big to keep inline)."""

from __future__ import annotations

import builtins
from collections.abc import Awaitable
from pathlib import Path
from typing import cast

from flowledger.app.limits import page_size
from flowledger.app.models import DownloadArtifacts, GetArtifact, ListArtifacts
from flowledger.app.paging import Listing, Position, keyset_page
from flowledger.app.results import ArtifactDocument, Page
from flowledger.artifacts.service import artifact_document
from flowledger.errors import NotFoundError
from flowledger.runtime.missing import missing_execution
from flowledger.types import Row


class Artifacts(Listing):
    """The artifact operations of one application (see :class:`flowledger.app.App`)."""

    async def list(self, request: ListArtifacts) -> builtins.list[ArtifactDocument]:
        """Every artifact of the execution, oldest first (NotFoundError for no such
        execution)."""
        await self._execution(request.execution_id)
        docs = await self._engine.artifacts.for_execution(request.execution_id)
        return cast(builtins.list[ArtifactDocument], docs)

    async def page(self, request: ListArtifacts) -> Page[ArtifactDocument]:
        """One page of the execution's artifacts, newest first (keyset: stable while its
        steps save more)."""
        execution_id = request.execution_id
        await self._execution(execution_id)

        def fetch(limit: int, before: Position | None) -> Awaitable[builtins.list[Row]]:
            return self._engine.store.list_artifacts(execution_id, limit, before)

        rows, cursor = await keyset_page(
            await self._codec(),
            "artifacts",
            {"execution": execution_id},
            request.cursor,
            page_size(request, self._limits.max_page),
            fetch,
            lambda row: (row["created_at"], str(row["id"])),
        )
        items = [cast(ArtifactDocument, artifact_document(row)) for row in rows]
        return Page[ArtifactDocument](items=items, next_cursor=cursor)

    async def _execution(self, execution_id: str) -> None:
        if await self._engine.store.get_execution(execution_id) is None:
            raise await missing_execution(self._engine.store, execution_id)

    async def get(self, request: GetArtifact) -> ArtifactDocument:
        """One artifact's document (NotFoundError when there is none)."""
        row = await self._engine.store.get_artifact(request.id)
        if row is None:
            raise NotFoundError(f"there is no artifact {request.id}")
        return cast(ArtifactDocument, artifact_document(row))

    async def read(self, request: GetArtifact) -> tuple[ArtifactDocument, bytes]:
        """An artifact's document and its bytes, checksum verified (NotFoundError when
        its file is not under this process's artifacts folder)."""
        doc = await self.get(request)
        data = await self._engine.artifacts.read(doc)  # on a thread: it may be large
        if data is None:
            raise NotFoundError(
                f"the file of artifact {request.id} is not in this server's artifacts folder"
            )
        return doc, data

    async def download(self, request: DownloadArtifacts) -> builtins.list[ArtifactDocument]:
        """Copy every artifact into the folder, checksums verified; nothing is copied when
        a target exists. Each document gets the ``path`` it was copied to."""
        docs = await self.list(ListArtifacts(execution_id=request.execution_id))
        paths = await self._engine.artifacts.download(request.execution_id, Path(request.folder))
        for doc, path in zip(docs, paths, strict=True):
            doc["path"] = str(path)
        return docs
