"""Artifacts: files steps save, stored under a directory and described in the database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowledger.steps.artifact_access import ArtifactAccess
from flowledger.storage import Store


def default_artifacts_root(db_url: str) -> Path:
    """Where artifacts go unless configured: next to the SQLite file, else the current folder."""
    return Path("flowledger-artifacts")


class ArtifactService:
    def __init__(self, store: Store, root: Path) -> None:
        self.store = store
        self.root = root

    def offload(self, execution_id: str, step_execution_id: str, step_id: str, output: Any) -> Any:
        """The output as the data store keeps it: large ones become artifact references."""
        return output

    def bind(self, execution_id: str, step_execution_id: str, step_id: str) -> ArtifactAccess:
        """Where one step execution saves its files."""
        return object()  # filled in by the artifacts part
