"""The HTTP side of a process that serves no API: ``flowledger worker --metrics-port``.

A worker runs the same engine as ``serve`` and feeds the same Prometheus instruments
(app.metrics: executions started and finished, step durations, claims, takeovers, queue
gauges), so it answers ``GET /metrics`` in the same format, plus ``/healthz`` and
``/readyz`` for an orchestrator's probes. Nothing else: no token, no ``/api/v1`` (a
worker holds no tokens to check). Served by uvicorn on the worker's own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from flowledger.api import errors, metrics
from flowledger.api.routes import health
from flowledger.app import App

#: Seconds the metrics server gets to bind before the worker gives up on it.
BIND_TIMEOUT = 10.0


class BindError(RuntimeError):
    """The metrics port could not be listened on."""


def create_metrics_api(app: App) -> FastAPI:
    """``/metrics``, ``/healthz`` and ``/readyz`` over ``app``."""
    api = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    api.state.flowledger = app
    errors.install(api)
    api.include_router(metrics.router)
    api.include_router(health.router)
    return api


@contextlib.asynccontextmanager
async def metrics_server(app: App, host: str, port: int) -> AsyncIterator[None]:
    """Serve :func:`create_metrics_api` on ``host:port`` while the block runs;
    BindError when the port cannot be listened on."""
    from flowledger.api.hosting import server as make_server

    # No access lines: a scrape every few seconds would drown the worker's own lines.
    server = make_server(create_metrics_api(app), host, port, level="warning", access_log=False)

    async def serve() -> None:
        # uvicorn exits when it cannot bind: that is not the worker's exit.
        with contextlib.suppress(SystemExit):
            await server.serve()

    serving = asyncio.create_task(serve())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BIND_TIMEOUT
    while not server.started:
        if serving.done() or loop.time() > deadline:
            server.should_exit = True
            await serving
            raise BindError(f"could not serve metrics on {host}:{port}")
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await serving
