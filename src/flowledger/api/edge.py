"""The one middleware every HTTP request goes through, in one pass (pure ASGI, no
per-request objects beyond two closures):

- **limits** on what comes in, before any route sees it: a URL holding a NUL character
  (``%00``) is refused (422: no name, id or filter holds one, and PostgreSQL text cannot
  even be asked for one); all the headers together (413 past :data:`MAX_HEADER_BYTES`);
  a header that counts once sent twice (400: ``Idempotency-Key``, ``webhook-id``,
  app.limits.SINGLE_HEADERS);
  the body's size (413 naming the limit, refused from ``Content-Length`` before reading
  when it can be) and, for JSON, its nesting depth (422). The body is read once, checked
  and replayed to the route; later ``receive`` calls (a client disconnecting from a
  stream) pass through. A request that declares no body (neither ``Content-Length`` nor
  ``Transfer-Encoding``: HTTP/1.1 says it has none) is handed on untouched; one with a
  body and a ``Content-Encoding`` other than ``identity`` is refused before it is read
  (415 naming the header, with ``Accept-Encoding: identity``: nothing is decompressed);
- **timing**: ``flowledger_http_request_duration_seconds`` by route template
  (``/api/v1/executions/{id}``, never the raw URL: one series per route, whatever ids
  are asked for), the time until the response starts (status and headers sent): for an
  event stream or a long poll that is how long the client waited for an answer, not
  how long it kept the connection. Requests that match no route are ``unmatched``,
  those this layer refused before routing (too large, NUL, too deep) ``refused``;
- **page headers**: headers added to every response outside ``/api/``, ``/hooks/`` and
  ``/metrics`` (``api.state.page_headers``: the web UI puts its security headers there).

Decision: one layer instead of three (body limits, timer, page headers) — each layer
cost a coroutine and a ``send`` wrapper per request on the hottest route.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowledger.api.errors import classify, error_response
from flowledger.app.inputs import malformed_json_error
from flowledger.app.limits import (
    SINGLE_HEADERS,
    check_json_depth,
    encoding_error,
    hook_body_too_large,
    repeated_header_error,
    too_large,
)
from flowledger.app.metrics import ServiceMetrics
from flowledger.config import Limits
from flowledger.errors import FlowledgerError, InputError, TooLargeError
from flowledger.logs import log_extra

#: All of a request's header names and values together, in bytes (browsers send a few
#: KiB; common servers refuse past 8-64 KiB).
MAX_HEADER_BYTES = 64 * 1024
#: Paths that get no page headers: the API's JSON, webhooks, metrics.
NOT_PAGES = ("/api/", "/hooks/", "/metrics")

log = logging.getLogger(__name__)


class Edge:
    def __init__(
        self,
        app: ASGIApp,
        limits: Limits,
        metrics: ServiceMetrics,
        page_headers: list[tuple[bytes, bytes]],
        hook_body_limit: int,
    ) -> None:
        self.app = app
        self.limits = limits
        #: Webhook bodies (``/hooks/``) have their own limit instead of ``max_body``.
        self.hook_body_limit = hook_body_limit
        self.histogram = metrics.http
        #: Added to every response outside :data:`NOT_PAGES`; a list the application
        #: keeps (``api.state.page_headers``), filled by whoever mounts pages on it.
        self.page_headers = page_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        path: str = scope["path"]
        extra = self.page_headers if not path.startswith(NOT_PAGES) else None
        seen = False

        async def sending(message: Message) -> None:
            nonlocal seen
            if message["type"] == "http.response.start" and not seen:
                seen = True
                route = scope.get("route")
                template = getattr(route, "path", None) or scope.get(_REFUSED, "unmatched")
                self.histogram.labels(scope["method"], template, str(message["status"])).observe(
                    time.perf_counter() - began
                )
                if extra:
                    message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self._checked(scope, receive, sending)
        except Exception as exc:
            if seen:  # the answer began: nothing else can be said; the server ends it
                raise
            await _internal_error(scope, receive, sending, exc)

    async def _checked(self, scope: Scope, receive: Receive, sending: Send) -> None:
        """The request refused here when it breaks a limit, else handed on."""
        path: str = scope["path"]
        if "\x00" in path or b"%00" in scope.get("query_string", b""):
            nul = InputError("the URL must not contain NUL characters (%00)")
            await _refuse(scope, receive, sending, nul)
            return
        declared = None
        chunked = False
        content_type = b""
        header_bytes = 0
        single: list[bytes] = []
        codings: list[bytes] = []
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value)
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"content-type":
                content_type = value
            elif name in SINGLE_HEADERS:
                single.append(name)
            elif name == b"content-encoding":
                codings.append(value)
        if header_bytes > MAX_HEADER_BYTES:
            # The server parses headers unbounded, and a webhook stores them: 6 MB of them
            # passed with a 7-byte body.
            limit = f"{MAX_HEADER_BYTES // 1024} KiB"
            over = TooLargeError(
                f"the request headers are larger than the limit of {limit}", ("headers",),
                limit=MAX_HEADER_BYTES,
            )  # fmt: skip
            await _refuse(scope, receive, sending, over)
            return
        repeated = repeated_header_error(single) if len(single) > 1 else None
        if repeated is not None:
            await _refuse(scope, receive, sending, repeated)
            return
        if declared is None and not chunked:  # no body (RFC 9112 §6.3)
            await self.app(scope, receive, sending)
            return
        encoded = encoding_error(codings) if codings else None
        if encoded is not None:  # RFC 9110 §12.5.3: say which codings are taken
            await _refuse(scope, receive, sending, encoded, {"Accept-Encoding": "identity"})
            return
        replay = await self._read(scope, receive, sending, declared, content_type)
        if replay is not None:
            await self.app(scope, replay, sending)

    async def _read(
        self, scope: Scope, receive: Receive, send: Send, declared: bytes | None, kind: bytes
    ) -> Receive | None:
        """The body, read and checked, as a ``receive`` that replays it; None when the
        request was refused (the answer is sent)."""
        if scope["path"].startswith("/hooks/"):
            limit = self.hook_body_limit
            over = hook_body_too_large(limit)
        else:
            limit = self.limits.max_body
            over = too_large("the request body", limit, "max_body")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(scope, receive, send, over)
            return None
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
                await _refuse(scope, receive, send, over)
                return None
            chunks.append(body)
            more = message.get("more_body", False)
        data = b"".join(chunks)
        if data and _is_json(kind, data):
            try:
                check_json_depth(data, self.limits.max_json_depth)
            except FlowledgerError as exc:
                await _refuse(scope, receive, send, exc)
                return None
            # Declared JSON only: a YAML definition's body may start with "{" too.
            malformed = malformed_json_error(data) if b"json" in kind.lower() else None
            if malformed is not None:
                await _refuse(scope, receive, send, malformed)
                return None
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                if first is not None:
                    return first
                return {"type": "http.request", "body": data, "more_body": False}
            return await receive()

        return replay


#: The scope key that labels the timing of a request this layer refused before routing.
_REFUSED = "flowledger.refused"


async def _internal_error(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    """A bug's exception as the API's error shape (a 500 ``internal_error``), its traceback
    in the server's log. Before, Starlette answered a plain-text "Internal Server Error"
    and uvicorn then dropped the connection, so a client's next request on it was reset."""
    method, path = scope["method"], scope["path"]
    log.error("%s %s failed: %s", method, path, type(exc).__name__, exc_info=exc,
              extra=log_extra("http_request", method=method, path=path))  # fmt: skip
    message = (
        f"the server failed to answer {method} {path} ({type(exc).__name__}); this is a "
        "flowledger bug: its log has the details"
    )
    response = error_response(500, "internal_error", message, None, {"Connection": "close"})
    await response(scope, receive, send)


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    exc: FlowledgerError,
    headers: dict[str, str] | None = None,
) -> None:
    scope[_REFUSED] = "refused"  # timed apart from requests no route matched
    status, code, details = classify(exc)
    headers = {"Connection": "close", **(headers or {})}
    response = error_response(status, code, str(exc), details, headers)
    await response(scope, receive, send)


def _is_json(content_type: bytes, data: bytes) -> bool:
    if b"json" in content_type.lower():
        return True
    return data.lstrip()[:1] in (b"{", b"[")
