"""Previews of an execution's artifacts on its page (app.artifact_previews), through
the application's Views facade."""

from __future__ import annotations

import pytest

from flowledger.app import App, NotFoundError, RunExecution
from flowledger.app.artifact_previews import PREVIEW_BYTES, PREVIEWS, ArtifactPreviews, preview_kind
from flowledger.app.models import GetArtifact


def test_which_artifacts_are_previewed_and_as_what() -> None:
    assert preview_kind("text/plain; charset=utf-8") == "text"
    assert preview_kind("application/problem+json") == "text"
    assert preview_kind("application/x-yaml") == "text"
    assert preview_kind("IMAGE/PNG") == "image"
    assert preview_kind("image/svg+xml") == "text"  # its source: never drawn (a script)
    assert preview_kind("application/octet-stream") is None
    assert preview_kind("application/pdf") is None


async def test_only_the_first_artifacts_are_previewed_and_each_is_bounded(
    app: App, hello_file: str
) -> None:
    """A live page renders again at each change: what it reads of the artifacts is
    bounded (PREVIEWS of them, each read whole only up to PREVIEW_BYTES)."""
    doc = await app.executions.run(
        RunExecution(workflow=hello_file, allow_file=True, input={"name": "Ada"})
    )
    save = app.engine.artifacts.save
    big = await save(doc["id"], None, None, "big.txt", b"x" * (PREVIEW_BYTES + 1), "text/plain")
    small = [
        await save(doc["id"], None, None, f"n{i}.txt", f"note {i}".encode(), "text/plain")
        for i in range(PREVIEWS + 2)
    ]
    found = await app.views.artifacts(ArtifactPreviews(execution_id=doc["id"]))
    assert [v["artifact"]["id"] for v in found] == [big["id"], *(a["id"] for a in small)]
    assert found[0]["preview"] is None and found[0]["note"] == "not previewed: over 64 KiB"
    texts = [v["text"] for v in found[1:]]
    assert texts == [f"note {i}" for i in range(PREVIEWS)] + [None, None]
    with pytest.raises(NotFoundError, match="has no image preview"):
        await app.views.artifact_image(GetArtifact(id=small[0]["id"]))
    with pytest.raises(NotFoundError, match="execution nope does not exist"):
        await app.views.artifacts(ArtifactPreviews(execution_id="nope"))
