"""The hottest read, ``GET /api/v1/executions/{id}`` with no query, answered before
FastAPI's routing and dependency solving (a third of the request's cost, measured with
py-spy under bench/api_bench.py).

Only what surely succeeds is answered here: a bearer token the application accepts
(every token may read) and an execution that exists, sent as the bytes
``App.executions.get_json`` gives. Everything else — no token, a bad one, an unknown
id, a ``?wait=``, any error — goes on to the FastAPI route of the same path, which
answers it as it always did (the error shape, 401/404/422, the OpenAPI document's
models). The route object is put in the scope, so the edge times the request under
the route's template like any other.
"""

from __future__ import annotations

from fastapi.security.utils import get_authorization_scheme_param
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from flowledger.api.deps import API_PREFIX
from flowledger.app import App, Authenticate, GetExecution
from flowledger.errors import FlowledgerError

PREFIX = f"{API_PREFIX}/executions/"
_START = len(PREFIX)


class HotReads:
    def __init__(self, app: ASGIApp, flowledger: App, route: BaseRoute) -> None:
        self.app = app
        self.flowledger = flowledger
        #: The FastAPI route of the same path (what the scope holds once routed).
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and not scope["query_string"]
            and scope["path"].startswith(PREFIX)
        ):
            body = await self._document(scope)
            if body is not None:
                scope["route"] = self.route
                headers = [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", b"application/json"),
                ]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    async def _document(self, scope: Scope) -> bytes | None:
        execution_id: str = scope["path"][_START:]
        token = _bearer(scope)
        if not execution_id or "/" in execution_id or token is None:
            return None
        app = self.flowledger
        try:
            caller = await app.tokens.authenticate(Authenticate(token=token, needs="viewer"))
            return await app.executions.get_json(
                GetExecution(id=execution_id, caller=caller["name"])
            )
        except FlowledgerError:
            return None  # the route answers it, with the error it always gave


def _bearer(scope: Scope) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (as fastapi's HTTPBearer reads it)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, token = get_authorization_scheme_param(value.decode("latin-1"))
            return token if scheme.lower() == "bearer" and token else None
    return None
