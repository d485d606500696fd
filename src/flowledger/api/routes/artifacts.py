"""Artifacts: one artifact's bytes, and the seed's listing by workflow run."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from flowledger.api.deps import API_PREFIX, AppDep, Paging, Viewer
from flowledger.api.errors import ERROR_RESPONSES
from flowledger.api.render import page
from flowledger.app import ArtifactDocument, GetArtifact, ListArtifacts, Page
from flowledger.app.downloads import content_disposition

router = APIRouter(prefix=API_PREFIX, tags=["artifacts"], responses=ERROR_RESPONSES)


@router.get(
    "/artifacts",
    response_model=Page[ArtifactDocument],
    summary="The artifacts of a workflow run (an execution), the seed's listing (viewer)",
)
async def list_artifacts(
    app: AppDep,
    caller: Viewer,
    workflow_run_id: Annotated[str, Query(alias="workflowRunId")],
    paging: Paging,
) -> Response:
    found = await app.artifacts.page(ListArtifacts(execution_id=workflow_run_id, **paging))
    return page(list(found.items), found.next_cursor)


@router.get(
    "/artifacts/{id}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
    summary="Download an artifact's bytes, checksum verified (viewer)",
)
async def download_artifact(id: str, app: AppDep, caller: Viewer) -> Response:
    doc, data = await app.artifacts.read(GetArtifact(id=id))
    return Response(
        data,
        media_type=doc["contentType"] or "application/octet-stream",
        headers={
            "Content-Disposition": content_disposition(doc["name"]),
            "ETag": f'"{doc["sha256"]}"',
            "X-Content-Type-Options": "nosniff",
        },
    )
