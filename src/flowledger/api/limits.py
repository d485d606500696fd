"""Limits on every request body, before any route sees it: the size (413 naming the
limit, refused from ``Content-Length`` before reading when it can be) and, for JSON, the
nesting depth (422). A URL holding a NUL character (``%00``) is refused too (422): no
name, id or filter holds one, and PostgreSQL text cannot even be asked for one. A pure
ASGI middleware: the body is read once, checked, and
replayed to the route; later ``receive`` calls (a client disconnecting from a stream)
pass through."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowledger.api.errors import classify, error_response
from flowledger.app.limits import check_json_depth, too_large
from flowledger.config import Limits
from flowledger.errors import FlowledgerError, InputError


class BodyLimits:
    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            nul = InputError("the URL must not contain NUL characters (%00)")
            await self._refuse(scope, receive, send, nul)
            return
        limit = self.limits.max_body
        over = too_large("the request body", limit, "max_body")
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, over)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        first: Message | None = None
        while more:
            message = await receive()
            if message["type"] != "http.request":
                first = message  # a disconnect: hand it on as it is
                break
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                await self._refuse(scope, receive, send, over)
                return
            chunks.append(body)
            more = message.get("more_body", False)
        data = b"".join(chunks)
        if data and _is_json(headers.get(b"content-type", b""), data):
            try:
                check_json_depth(data, self.limits.max_json_depth)
            except FlowledgerError as exc:
                await self._refuse(scope, receive, send, exc)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                if first is not None:
                    return first
                return {"type": "http.request", "body": data, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, exc: FlowledgerError
    ) -> None:
        status, code, details = classify(exc)
        response = error_response(status, code, str(exc), details, {"Connection": "close"})
        await response(scope, receive, send)


def _is_json(content_type: bytes, data: bytes) -> bool:
    if b"json" in content_type.lower():
        return True
    return data.lstrip()[:1] in (b"{", b"[")
