"""``GET /metrics`` (Prometheus text, no token, SPEC §6) and the middleware timing every
HTTP request by its route template (``/api/v1/executions/{id}``, never the raw URL:
one series per route, whatever ids are asked for).

The duration is the time until the response starts (status and headers sent): for an
event stream or a long poll that is how long the client waited for an answer, not how
long it kept the connection. Requests that match no route are labelled ``unmatched``.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowledger.api.deps import AppDep
from flowledger.app.metrics import CONTENT_TYPE, ServiceMetrics

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (no token)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
)
async def metrics(app: AppDep) -> Response:
    return Response(await app.metrics.exposition(), media_type=CONTENT_TYPE)


class RequestTimer:
    """ASGI middleware: ``flowledger_http_request_duration_seconds`` per route template."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        seen = False

        async def timed(message: Message) -> None:
            nonlocal seen
            if message["type"] == "http.response.start" and not seen:
                seen = True
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                self.metrics.http.labels(scope["method"], template, str(message["status"])).observe(
                    time.perf_counter() - began
                )
            await send(message)

        await self.app(scope, receive, timed)
