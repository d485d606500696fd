"""``GET /metrics`` (Prometheus text, no token, SPEC §6). Every HTTP request is timed
by its route template in api.edge."""

from __future__ import annotations

from fastapi import APIRouter, Response

from flowledger.api.deps import AppDep
from flowledger.app.metrics import CONTENT_TYPE

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (no token)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
)
async def get_metrics(app: AppDep) -> Response:
    return Response(await app.metrics.exposition(), media_type=CONTENT_TYPE)
