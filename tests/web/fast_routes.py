"""The in-process page tests' application (``create_api`` and ``mount_web`` over a test's
own App), its routes made ready once per module.

FastAPI builds each route's request handling (its parameters' pydantic adapters, some
700 of them) at an application's first request: ~0.4 s of CPU, ~0.6 s under coverage,
which every test paid with its fresh application. The routes hold nothing of an App
(the routers are module-level; a handler reads the App from ``request.app.state``), so a
later application takes the module's first router, built state included; its state and
middleware, which hold the App, stay its own."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRouter

from flowledger.api import ApiSettings, create_api
from flowledger.app import App
from flowledger.web import mount_web


def _shape(router: APIRouter) -> list[tuple[str, str, list[str]]]:
    return [
        (type(r).__name__, getattr(r, "path", ""), sorted(getattr(r, "methods", None) or []))
        for r in router.routes
    ]


class WebApps:
    """``web_api(app)``: the API and the UI over ``app``, as ``flowledger serve`` makes them."""

    def __init__(self) -> None:
        self._router: APIRouter | None = None

    def web_api(self, app: App) -> FastAPI:
        api = create_api(app, ApiSettings())
        mount_web(api)
        if self._router is None:
            self._router = api.router
        else:
            # The routes the first was given: the same code made both.
            assert _shape(api.router) == _shape(self._router)
            api.router = self._router
        return api
