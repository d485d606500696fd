"""Previews of an execution's artifacts on its page: a bounded look at the small texts,
JSON and images among them, read through the download's own operation (app.artifacts:
the same checksum check, the same refusal of a damaged file)."""

from __future__ import annotations

import json

from typing_extensions import TypedDict

from flowledger.app.artifacts import Artifacts
from flowledger.app.models import GetArtifact, Id, ListArtifacts, Request
from flowledger.app.results import ArtifactDocument
from flowledger.errors import NotFoundError, StorageError

#: An execution's artifacts previewed on its page (previews): a text (``text/*``,
#: JSON, YAML, XML, CSV) of at most PREVIEW_BYTES, read whole and checksum-verified by
#: the download's own operation, of which the first PREVIEW_TEXT characters are shown;
#: an image of a kind a browser draws and that holds no script (not SVG) of at most
#: PREVIEW_IMAGE_BYTES, drawn from preview_image. The first PREVIEWS of them only:
#: a live page renders again at each change, and a step may save hundreds.
PREVIEW_BYTES = 64 * 1024
PREVIEW_IMAGE_BYTES = 1024 * 1024
PREVIEW_TEXT = 4096
PREVIEWS = 8
PREVIEW_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif"})
_PREVIEW_TEXTS = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/yaml",
        "application/x-yaml",
        "application/xml",
        "application/csv",
        "application/toml",
    }
)


class ArtifactPreviews(Request):
    """An execution's artifacts as its page shows them (previews)."""

    execution_id: str = Id


class ArtifactView(TypedDict):
    artifact: ArtifactDocument
    #: ``text``, ``image``, or None: not previewed (``note`` says why, where it could be).
    preview: str | None
    #: A text's first PREVIEW_TEXT characters (a JSON document indented first).
    text: str | None
    #: Characters of the text not in ``text``.
    cut: int
    note: str | None


def media_type(content_type: str) -> str:
    """``text/plain; charset=utf-8`` → ``text/plain``."""
    return content_type.partition(";")[0].strip().lower()


def preview_kind(content_type: str) -> str | None:
    """``image``, ``text``, or None: what an artifact of that type is previewed as."""
    media = media_type(content_type)
    if media in PREVIEW_IMAGES:
        return "image"
    textual = media.startswith("text/") or media.endswith(("+json", "+xml"))
    return "text" if textual or media in _PREVIEW_TEXTS else None


def _preview_text(data: bytes, content_type: str) -> str | None:
    """The text of a preview (None: not text after all)."""
    text = data.decode("utf-8", "replace")
    if "\x00" in text:
        return None
    media = media_type(content_type)
    if media == "application/json" or media.endswith("+json"):
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):  # shown as it is
            pass
    return text


async def previews(artifacts: Artifacts, request: ArtifactPreviews) -> list[ArtifactView]:
    """The execution's artifacts, oldest first, the first PREVIEWS small texts and images
    among them with a preview (NotFoundError for no such execution). A text is read as
    its download is (app.artifacts: the same checksum check, the same refusal of a
    damaged file, said in ``note`` instead of failing the page)."""
    docs = await artifacts.list(ListArtifacts(execution_id=request.execution_id))
    found: list[ArtifactView] = []
    budget = PREVIEWS
    for doc in docs:
        shown: ArtifactView = {
            "artifact": doc,
            "preview": None,
            "text": None,
            "cut": 0,
            "note": None,
        }
        found.append(shown)
        kind = preview_kind(doc["contentType"])
        if kind is None or budget <= 0:
            continue
        most = PREVIEW_IMAGE_BYTES if kind == "image" else PREVIEW_BYTES
        if doc["size"] > most:
            shown["note"] = f"not previewed: over {most // 1024} KiB"
            continue
        budget -= 1
        if kind == "image":
            shown["preview"] = "image"
            continue
        try:
            _, data = await artifacts.read(GetArtifact(id=doc["id"]))
        except (NotFoundError, StorageError) as exc:
            shown["note"] = f"not previewed: {exc}"
            continue
        text = _preview_text(data, doc["contentType"])
        if text is None:
            shown["note"] = "not previewed: it is not text"
            continue
        shown["preview"] = "text"
        shown["text"], shown["cut"] = text[:PREVIEW_TEXT], max(0, len(text) - PREVIEW_TEXT)
    return found


async def preview_image(
    artifacts: Artifacts, request: GetArtifact
) -> tuple[ArtifactDocument, bytes]:
    """An artifact's bytes to draw as an image on its execution's page, read as its
    download is; NotFoundError for one that has no image preview (another type, or
    larger than PREVIEW_IMAGE_BYTES)."""
    doc = await artifacts.get(request)
    if preview_kind(doc["contentType"]) != "image" or doc["size"] > PREVIEW_IMAGE_BYTES:
        raise NotFoundError(f"artifact {request.id} has no image preview: download it")
    return await artifacts.read(request)
