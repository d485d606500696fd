"""A tiny stand-in lead-enrichment service for examples/lead_followup.yaml (and a paged
contact list for examples/cursor_paging.yaml).

    python3 examples/enrich_server.py [--port 8765] &

``POST /lookup`` with ``{"email": "ada@example.com"}`` answers ``{"company": "Ada Ltd"}``,
but the first request for each email gets a 503, as a busy service would: the
workflow's retry policy carries it through (each retry sends the same
``Idempotency-Key``). ``GET /contacts?cursor=<email>&limit=<n>`` answers
``{"contacts": [...], "next_cursor": ...}``: the next n contacts (by email) after the
cursor, and the cursor of the page after (null on the last page). Standard library
only; stops on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_PORT = 8765
#: What ``GET /contacts`` pages through, in email order.
CONTACTS = [
    {"email": f"{name}@example.com", "name": name.title()}
    for name in ("ada", "alan", "barbara", "grace", "linus")
]


class EnrichServer(ThreadingHTTPServer):
    """Remembers every request (email, idempotency key) and which emails it has seen."""

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _EnrichHandler)
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.seen: set[str] = set()


class _EnrichHandler(BaseHTTPRequestHandler):
    server: EnrichServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/contacts":
            self._answer(404, {"error": "no such route"})
            return
        query = parse_qs(url.query)
        cursor = query.get("cursor", [""])[0]
        limit = int(query.get("limit", ["2"])[0])
        page = [c for c in CONTACTS if c["email"] > cursor][:limit]
        more = bool(page) and page[-1]["email"] < CONTACTS[-1]["email"]
        self._answer(200, {"contacts": page, "next_cursor": page[-1]["email"] if more else None})

    def _answer(self, status: int, answer: Any) -> None:
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        email = str(body["email"])
        with self.server.lock:
            first = email not in self.server.seen
            self.server.seen.add(email)
            self.server.requests.append({"email": email, "key": self.headers["Idempotency-Key"]})
        status, answer = (
            (503, {"error": "busy, try again"})
            if first
            else (200, {"company": email.split("@")[0].title() + " Ltd"})
        )
        self._answer(status, answer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port on 127.0.0.1")
    port = parser.parse_args().port
    server = EnrichServer(port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"enrich service on http://127.0.0.1:{port}/lookup", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
