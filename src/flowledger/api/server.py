"""The ASGI application: routers, the error mapping, the edge (limits, timing), the OpenAPI
document at ``/api/v1/openapi.json``, a docs page at ``/api/v1/docs`` and ``/metrics``
(api.metrics).

``create_api`` takes an :class:`App` that is already open; whoever opened it closes it
(``flowledger serve``, or a test). Routers come from ``api.routes.ROUTERS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute

from flowledger import __version__
from flowledger.api import errors, metrics, tracing
from flowledger.api.deps import API_PREFIX
from flowledger.api.edge import Edge
from flowledger.api.hot import HotPaths
from flowledger.api.parameters import known_parameters
from flowledger.api.routes import ROUTERS, executions, outbound, workflows
from flowledger.app import App
from flowledger.config import Limits


@dataclass(frozen=True)
class ApiSettings:
    """What the HTTP face is configured with (``Settings.limits`` from the environment)."""

    limits: Limits = field(default_factory=Limits)
    #: OpenTelemetry traces (``Settings.otel``; api.tracing).
    otel: bool = False
    #: Where spans go when ``otel``: an OpenTelemetry ``SpanProcessor``; None: OTLP.
    span_processor: Any = None


def operation_id(route: APIRoute) -> str:
    """A route's OpenAPI operationId: its endpoint's name in camelCase (``startExecution``,
    ``getExecution``), which generated clients name their methods by. FastAPI's default
    appended the path and method (``get_execution_api_v1_executions__id__get``)."""
    first, *rest = route.name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def create_api(app: App, settings: ApiSettings) -> FastAPI:
    """The HTTP face over ``app``."""
    api = FastAPI(
        generate_unique_id_function=operation_id,
        title="flowledger",
        version=__version__,
        summary="A durable, declarative workflow engine: the runs API (SPEC §6).",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    api.state.flowledger = app
    api.state.limits = settings.limits
    app.slots.limits = settings.limits  # streams and waits per token (app.slots)
    api.state.settings = settings
    errors.install(api)
    refuse_unknown = [Depends(known_parameters)]
    for router in ROUTERS:
        # /api/v1 only: /hooks takes any query as trigger data (api.parameters)
        api.include_router(
            router, dependencies=refuse_unknown if router.prefix == API_PREFIX else None
        )
    api.include_router(metrics.router)
    api.webhooks.include_router(outbound.webhooks)  # described, never served
    api.add_middleware(
        HotPaths,
        flowledger=app,
        read_route=executions.get_execution_route(),
        start_route=workflows.start_execution_route(),
    )
    if settings.otel:
        api.state.span_processor = tracing.trace_engine(app.engine, settings.span_processor)
        api.add_middleware(tracing.TraceContext)
    #: Headers for every response outside the API (web.mount_web adds the UI's).
    page_headers: list[tuple[bytes, bytes]] = []
    api.state.page_headers = page_headers
    # Outermost: limits, timing and page headers in one pass (api.edge).
    api.add_middleware(
        Edge,
        limits=settings.limits,
        metrics=app.metrics,
        page_headers=page_headers,
        hook_body_limit=app.engine.settings.hook_body_limit,
    )
    return api
