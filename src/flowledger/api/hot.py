"""The two hottest requests, answered before FastAPI's routing, dependency solving and
body validation (measured with py-spy under bench/api_bench.py: a third of a
``GET /api/v1/executions/{id}``, two fifths of a start):

- ``GET /api/v1/executions/{id}`` with no query: the bytes
  ``App.executions.get_json`` gives;
- ``POST /api/v1/workflows/{name}/executions`` with no query and a JSON body (or none):
  the body parsed into the route's own model (``StartBody``), and the same two calls
  as the route, ``StartBody.request`` and ``App.executions.start``, rendered as the
  route renders them.

Only what surely succeeds is taken here: a bearer token the application accepts for
the route's role, and (GET) an execution that exists or (POST) a body its model
accepts. Everything else — no token, a bad one, a role too low, an unknown id, a
query, a body that is not JSON or not a start — goes on to the FastAPI route of the
same path, which answers it as it always did (the error shape, 401/403/404/422, the
OpenAPI document's models); a POST's body is handed on as it was read. Once a start
has been asked of the application, its answer is given here, an error included (in
the shape the route's error handler gives): going on to the route would ask again.
The route object is put in the scope, so the edge times the request under the
route's template like any other.
"""

from __future__ import annotations

import json

from fastapi.security.utils import get_authorization_scheme_param
from pydantic import ValidationError
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowledger.api.bodies import StartBody
from flowledger.api.deps import API_PREFIX
from flowledger.api.errors import flowledger_response
from flowledger.api.render import render
from flowledger.app import App, Authenticate, GetExecution
from flowledger.errors import FlowledgerError

EXECUTIONS = f"{API_PREFIX}/executions/"
WORKFLOWS = f"{API_PREFIX}/workflows/"
STARTS = "/executions"
_JSON = b"application/json"


class HotPaths:
    def __init__(
        self, app: ASGIApp, flowledger: App, read_route: BaseRoute, start_route: BaseRoute
    ) -> None:
        self.app = app
        self.flowledger = flowledger
        #: The FastAPI routes of the same paths (what the scope holds once routed).
        self.read_route = read_route
        self.start_route = start_route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["query_string"]:
            method, path = scope["method"], scope["path"]
            if method == "GET" and path.startswith(EXECUTIONS):
                body = await self._document(scope, path[len(EXECUTIONS) :])
                if body is not None:
                    scope["route"] = self.read_route
                    headers = [
                        (b"content-length", str(len(body)).encode()),
                        (b"content-type", b"application/json"),
                    ]
                    await send({"type": "http.response.start", "status": 200, "headers": headers})
                    await send({"type": "http.response.body", "body": body})
                    return
            elif method == "POST" and path.startswith(WORKFLOWS) and path.endswith(STARTS):
                name = path[len(WORKFLOWS) : -len(STARTS)]
                onward = await self._start(scope, receive, send, name)
                if onward is not None:
                    await self.app(scope, onward, send)
                return
        await self.app(scope, receive, send)

    async def _document(self, scope: Scope, execution_id: str) -> bytes | None:
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

    async def _start(self, scope: Scope, receive: Receive, send: Send, name: str) -> Receive | None:
        """Answer a start and return None; or return what the route must receive (the
        body as read here, then the client's further messages)."""
        token = _bearer(scope)
        if not name or "/" in name or token is None or not _json_or_none(scope):
            return receive
        if _has_header(scope, b"idempotency-key"):
            return receive  # the route reads it
        message = await receive()  # the edge has read the whole body: one message
        onward = _replaying(message, receive)
        if message["type"] != "http.request" or message.get("more_body", False):
            return onward
        app = self.flowledger
        try:
            # As FastAPI parses a body: json.loads, then the model from Python values.
            data = message.get("body", b"")
            body = StartBody.model_validate(json.loads(data)) if data else StartBody()
            caller = await app.tokens.authenticate(Authenticate(token=token, needs="operator"))
        except (ValueError, ValidationError, FlowledgerError):
            return onward  # the route answers it, with the error it always gave
        scope["route"] = self.start_route
        try:
            request = body.request(name, caller["createdBy"])
            response = render(await app.executions.start(request), 201)
        except FlowledgerError as exc:
            response = flowledger_response(exc)
        await response(scope, onward, send)
        return None


def _json_or_none(scope: Scope) -> bool:
    """A JSON body, or none declared (the route parses both; anything else goes to it)."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            kind: bytes = value.split(b";", 1)[0].strip().lower()
            return kind == _JSON
    return True


def _has_header(scope: Scope, wanted: bytes) -> bool:
    return any(name == wanted for name, _ in scope["headers"])


def _replaying(first: Message, receive: Receive) -> Receive:
    """``receive`` that gives ``first`` once, then the client's messages."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return first
        return await receive()

    return replay


def _bearer(scope: Scope) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (as fastapi's HTTPBearer reads it)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, token = get_authorization_scheme_param(value.decode("latin-1"))
            return token if scheme.lower() == "bearer" and token else None
    return None
