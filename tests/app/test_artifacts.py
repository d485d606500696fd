"""app.artifacts: an artifact whose file is damaged or was replaced is one error, in one
set of words, whether it is read (``GET /artifacts/{id}``, the pages) or downloaded (the
CLI): a download said "does not exist" of a FIFO or a dangling symlink, and HTTP
answered 503, a retry that never succeeds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from flowledger.app import App
from flowledger.app.models import DownloadArtifacts, GetArtifact
from flowledger.app.statuses import http_status
from flowledger.errors import ArtifactDamagedError
from tests.artifacts.traps import fifo_trap

CSV = b"id,name\n1,Ada\n"
DAMAGED = "is damaged or was replaced: its file "


@contextmanager
def tampered(path: Path, how: str, elsewhere: Path) -> Iterator[None]:
    """The artifact's file at ``path`` replaced or changed ``how``."""
    path.unlink()
    if how == "fifo":
        with fifo_trap(path) as trap:
            yield
        assert not trap.opened, "a FIFO in place of an artifact's file was opened"
        return
    if how == "symlink":  # the very bytes, but not where flowledger wrote them
        (elsewhere / "copy.csv").write_bytes(CSV)
        path.symlink_to(elsewhere / "copy.csv")
    elif how == "dangling symlink":
        path.symlink_to(elsewhere / "nowhere.csv")
    elif how == "folder":
        path.mkdir()
    elif how == "other bytes":
        path.write_bytes(CSV.upper())
    elif how == "shorter":
        path.write_bytes(CSV[:-1])
    yield


@pytest.mark.parametrize(
    ("how", "what"),
    [
        ("symlink", "is not a regular file inside the artifacts folder"),
        ("dangling symlink", "is not a regular file inside the artifacts folder"),
        ("fifo", "is not a regular file inside the artifacts folder"),
        ("folder", "is not a regular file inside the artifacts folder"),
        ("other bytes", "does not match its recorded sha256"),
        ("shorter", "does not match its recorded sha256"),
    ],
)
async def test_a_damaged_or_replaced_file_is_one_error_for_a_read_and_a_download(
    app: App, tmp_path: Path, how: str, what: str
) -> None:
    execution_id = await app.engine.start(
        app.engine.load_text("name: s\nsteps: [{id: a, type: sys.no_action}]")
    )
    doc = await app.engine.artifacts.save(execution_id, None, None, "report.csv", CSV)
    path = app.engine.artifacts.path_of(execution_id, doc["id"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = tmp_path / "out"
    with tampered(path, how, elsewhere):
        with pytest.raises(ArtifactDamagedError) as read:
            await app.artifacts.read(GetArtifact(id=doc["id"]))
        with pytest.raises(ArtifactDamagedError) as downloaded:
            await app.artifacts.download(
                DownloadArtifacts(execution_id=execution_id, folder=str(target))
            )
    message = str(read.value)
    assert message == str(downloaded.value)
    assert message.startswith(f"artifact 'report.csv' ({doc['id']}) {DAMAGED}{path} {what}")
    assert not target.exists() or not any(target.iterdir())
    # Permanent and the server's: 500, not a 503 that asks for a retry.
    assert http_status(read.value) == (500, "artifact_damaged")
