"""``flowledger db info``: which database and artifacts folder the application uses, how
big they are, and how many rows its main tables hold."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy.engine import make_url

from flowledger.app.results import ArtifactsFolderInfo, DatabaseInfo
from flowledger.runtime.engine import Engine


class Database:
    """Facts about the database of one application (see :class:`flowledger.app.App`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def info(self) -> DatabaseInfo:
        store = self._engine.store
        url = make_url(self._engine.db_url)
        root = self._engine.artifacts.root
        return {
            # Never the password: this is printed and may be pasted into a ticket.
            "url": url.render_as_string(hide_password=True),
            "backend": "postgresql" if url.get_backend_name() == "postgresql" else "sqlite",
            "sizeBytes": await store.database_size(),
            "artifacts": await asyncio.to_thread(_folder_info, root),
            "tables": await store.table_counts(),
        }


def _folder_info(root: Path) -> ArtifactsFolderInfo:
    files = size = 0
    if root.is_dir():
        for path in root.rglob("*"):
            if path.is_file():
                files += 1
                size += path.stat().st_size
    return {"path": str(root.resolve()), "exists": root.is_dir(), "files": files, "sizeBytes": size}
