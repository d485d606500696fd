"""Artifacts: the files an execution's steps saved (and outputs too big to keep inline)."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import cast

from flowledger.app.models import DownloadArtifacts, GetArtifact, ListArtifacts
from flowledger.app.results import ArtifactDocument
from flowledger.artifacts.service import artifact_document
from flowledger.errors import NotFoundError
from flowledger.runtime.engine import Engine


class Artifacts:
    """The artifact operations of one application (see :class:`flowledger.app.App`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def list(self, request: ListArtifacts) -> builtins.list[ArtifactDocument]:
        """The execution's artifacts, oldest first (NotFoundError for no such execution)."""
        if await self._engine.store.get_execution(request.execution_id) is None:
            raise NotFoundError(f"execution {request.execution_id} does not exist")
        docs = await self._engine.artifacts.for_execution(request.execution_id)
        return cast(builtins.list[ArtifactDocument], docs)

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
        data = self._engine.artifacts.read_file(doc)
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
