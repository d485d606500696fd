"""A real HTTP server on 127.0.0.1 for step tests: no mocks between client and socket.

Routes (all answer JSON unless noted):

- ``GET /json`` -> ``{"hello": "world"}``
- ``* /echo`` -> the request as seen by the server: method, path, query, headers, body
- ``POST /encode`` -> the body back, spelled: ``raw``, ``base64``, ``urlsafe``, ``url``
- ``GET /text`` -> ``text/plain`` ``hello, world``
- ``GET /empty`` -> 204 without a body
- ``GET /status/<code>?retry_after=<value>`` -> that status with a small JSON body (and
  that ``Retry-After`` header when given)
- ``GET /big?n=<bytes>`` -> ``text/plain`` of n bytes (no Content-Length when ``chunked=1``)
- ``GET /slow?s=<seconds>`` -> waits, then answers
- ``GET /trickle`` -> 100 bytes, one every 50 ms
- ``GET /redirect?n=<hops>`` -> 302 chain ending at ``/json``
- ``GET /redirect-to?url=<url>`` -> 302 to that URL
- ``GET /badjson`` -> ``application/json`` that does not parse
- ``GET /problem`` -> ``application/problem+json``
- ``GET /bytes?hex=<bytes>&type=<content type>`` -> those bytes with that type
- ``GET /cookies`` -> two ``Set-Cookie`` headers whose dates hold commas
- ``GET /poll/<key>?ready_after=<n>`` -> ``{state: running, calls}`` until the n-th call for
  that key, then ``{state: done, calls, result: 42}`` (a job polled until it is done)
- ``GET /pages/<key>?after=<id>&limit=<n>`` -> ``{rows, nextCursor}``: rows 10, 20 .. 70 of
  that key with an id above ``after`` (a cursor); once the first page is served, row 5 is
  added in front, as data changing mid-run (an offset would then repeat a row)
"""

from __future__ import annotations

import base64
import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(
        self, status: int, body: bytes = b"", content_type: str = "application/json", **extra: str
    ) -> None:
        self.send_response(status)
        if status != 204:
            if content_type:  # none: the client must guess
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        for name, value in extra.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any, content_type: str = "application/json") -> None:
        self._send(status, json.dumps(value).encode(), content_type)

    def _route(self) -> None:
        url = urlsplit(self.path)
        query: dict[str, Any] = {
            k: v if len(v) > 1 else v[0] for k, v in parse_qs(url.query).items()
        }
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = url.path.strip("/").split("/")
        if url.path == "/json":
            self._json(200, {"hello": "world", "unicode": "grüße ✓"})
        elif url.path == "/echo":
            body: Any = raw.decode()
            if "json" in self.headers.get("Content-Type", ""):
                body = json.loads(raw)
            headers = {k.lower(): v for k, v in self.headers.items()}
            echo = {"method": self.command, "path": url.path, "query": query}
            echo["rawQuery"] = url.query  # as sent, not decoded
            self._json(200, {**echo, "headers": headers, "body": body})
        elif url.path == "/encode":
            text = raw.decode()
            spelled = {"raw": text, "base64": base64.b64encode(raw).decode()}
            spelled |= {"urlsafe": base64.urlsafe_b64encode(raw).decode(), "url": quote(text)}
            self._json(200, spelled)
        elif url.path == "/text":
            self._send(200, b"hello, world", "text/plain; charset=utf-8")
        elif url.path == "/empty":
            self._send(204)
        elif parts[0] == "status":
            body = json.dumps({"error": f"status {parts[1]}", "pad": "x" * 4000}).encode()
            wait = {"Retry_After": query["retry_after"]} if "retry_after" in query else {}
            self._send(int(parts[1]), body, **wait)
        elif url.path == "/big":
            self._big(int(query["n"]), chunked=query.get("chunked") == "1")
        elif url.path == "/slow":
            self.server.stopping.wait(float(query["s"]))  # returns early at shutdown
            self._json(200, {"slow": True})
        elif url.path == "/trickle":  # one byte every 50 ms: each read is quick, the whole is not
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b"x")
                self.wfile.flush()
                if self.server.stopping.wait(0.05):
                    break
        elif url.path == "/redirect":
            hops = int(query["n"])
            target = f"/redirect?n={hops - 1}" if hops > 1 else "/json"
            self._send(302, b"", "text/plain", Location=target)
        elif url.path == "/redirect-to":  # anywhere: for the egress guard's redirect check
            self._send(int(query.get("code", 302)), b"", "text/plain", Location=query["url"])
        elif url.path == "/badjson":
            self._send(200, b'{"not": json', "application/json")
        elif url.path == "/raw":  # these exact bytes as JSON: overflowing numbers, a BOM
            self._send(200, query["text"].encode(), "application/json")
        elif url.path == "/problem":
            self._json(200, {"title": "ok"}, "application/problem+json")
        elif url.path == "/bytes":
            self._send(200, bytes.fromhex(query["hex"]), query.get("type", ""))
        elif parts[0] == "poll":
            with self.server.lock:
                calls = self.server.calls[url.path] = self.server.calls.get(url.path, 0) + 1
            done = calls >= int(query.get("ready_after", 1))
            answer = {"state": "done", "result": 42} if done else {"state": "running"}
            self._json(200, {**answer, "calls": calls})
        elif parts[0] == "pages":
            with self.server.lock:
                rows = self.server.rows.setdefault(parts[1], list(range(10, 80, 10)))
                after, limit = int(query.get("after", -1)), int(query.get("limit", 3))
                page = [{"id": n} for n in rows if n > after][:limit]
                if after < 0:
                    rows.insert(0, 5)
            more = bool(page) and page[-1]["id"] < max(rows)
            self._json(200, {"rows": page, "nextCursor": page[-1]["id"] if more else None})
        elif url.path == "/cookies":
            self.send_response(200)
            self.send_header("Set-Cookie", "a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT")
            self.send_header("Set-Cookie", "b=2; Path=/")
            self.send_header("Vary", "Accept")
            self.send_header("Vary", "Cookie")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._json(404, {"error": "no such route"})

    def _big(self, size: int, *, chunked: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(size))
        self.end_headers()
        block = b"x" * 65536
        sent = 0
        while sent < size:
            piece = block[: min(len(block), size - sent)]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _route


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler still sleeping must not hold up the test run

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.calls: dict[str, int] = {}  # /poll: calls per path
        self.rows: dict[str, list[int]] = {}  # /pages: row ids per key

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client hanging up is fine
            super().handle_error(request, client_address)


@contextmanager
def serve() -> Iterator[str]:
    """Run the server in a thread; yields its base URL, ``http://127.0.0.1:<port>``."""
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()
