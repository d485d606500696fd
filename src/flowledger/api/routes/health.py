"""Liveness and readiness, without a token and without the ``/api/v1`` prefix."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from typing_extensions import TypedDict

from flowledger.api.deps import AppDep
from flowledger.api.errors import ERROR_RESPONSES

router = APIRouter(tags=["health"])


class Health(TypedDict):
    status: Literal["ok", "ready"]


# HEAD too: probes and uptime checkers often ask with it.
@router.api_route(
    "/healthz", methods=["GET", "HEAD"], summary="Liveness: the process answers (no token)"
)
async def healthz() -> Health:
    return {"status": "ok"}


@router.api_route(
    "/readyz",
    methods=["GET", "HEAD"],
    summary="Readiness: the database answers, with this build's schema, and takes writes "
    "(no token); 503 when not",
    responses={503: ERROR_RESPONSES[503]},
)
async def readyz(app: AppDep) -> Health:
    await app.ping()
    return {"status": "ready"}
