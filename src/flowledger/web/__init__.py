"""The web UI served by ``flowledger serve`` at ``/`` (SPEC §6): server-rendered pages
(Jinja2, autoescaped) with htmx and a little JavaScript, assets shipped in the package.

A thin face like the HTTP API: it parses, calls the application layer and renders.
``mount_web(api)`` adds its routes, its static files and its security headers to the
FastAPI application that ``create_api`` built (the API and the UI are peers: neither
imports the other; ``flowledger serve`` composes them).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from flowledger.web.headers import HEADERS, SecurityHeaders
from flowledger.web.pages import router

STATIC = Path(__file__).parent / "static"

__all__ = ["mount_web"]


def mount_web(api: FastAPI) -> None:
    """Serve the UI from ``api`` (whose ``state.flowledger`` is the open App)."""
    api.include_router(router)
    api.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    page_headers = getattr(api.state, "page_headers", None)
    if page_headers is None:  # an application without the API's edge middleware
        api.add_middleware(SecurityHeaders)
    else:
        page_headers.extend(HEADERS)  # sent by the edge, one layer fewer per request
