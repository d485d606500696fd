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


# HEAD too: probes and uptime checkers often ask with it. One route per method: a route
# of both had one operationId for two operations, which OpenAPI forbids.
@router.head("/healthz", summary="Liveness, without a body (no token)", operation_id="headHealthz")
@router.get("/healthz", summary="Liveness: the process answers (no token)", operation_id="healthz")
async def healthz() -> Health:
    return {"status": "ok"}


_READY = (
    "Readiness: the database answers, with this build's schema, and takes writes (no token); "
    "503 when not"
)


@router.head(
    "/readyz", summary=_READY, responses={503: ERROR_RESPONSES[503]}, operation_id="headReadyz"
)
@router.get("/readyz", summary=_READY, responses={503: ERROR_RESPONSES[503]}, operation_id="readyz")
async def readyz(app: AppDep) -> Health:
    await app.ping()
    return {"status": "ready"}
