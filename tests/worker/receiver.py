"""A real webhook receiver for tests: a threaded ``http.server`` on 127.0.0.1.

It records every request (headers and body) and answers ``down_status`` (503) while
``down`` is set, with a ``Retry-After: retry_after`` header when that is set, and 200
otherwise; while ``answering`` is clear it holds each answer until it is set, for
``hold`` seconds at most (a receiver that takes its time); with ``trickle`` set it
answers 200 at once and then sends its declared body a byte every ``trickle`` seconds
(a receiver that holds the sender however short each read's timeout); ``accepted`` maps each ``webhook-id`` it answered 200 to how many
times it did (a receiver that dedupes by ``webhook-id`` sees each once).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: Bytes of a trickled body.
TRICKLED = 100


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    url: str = ""
    down: bool = False
    down_status: int = 503
    retry_after: str | None = None
    #: Set: answer at once. Clear: hold each answer until it is set again (``hold`` s at most).
    answering: threading.Event = field(default_factory=threading.Event)
    hold: float = 10.0
    #: Seconds between two bytes of a trickled body (None: the body is empty).
    trickle: float | None = None
    #: The answers sent (their status lines).
    answered: int = 0
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def accepted(self) -> Counter[str]:
        with self.lock:
            return Counter(r.headers["webhook-id"] for r in self.requests if r.status == 200)

    @property
    def refused(self) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.status != 200)

    def first_accepted(self) -> dict[str, Received]:
        with self.lock:
            found: dict[str, Received] = {}
            for r in self.requests:
                if r.status == 200:
                    found.setdefault(r.headers["webhook-id"], r)
            return found


@contextmanager
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    state.answering.set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            status = state.down_status if state.down else 200
            with state.lock:
                headers = {k.lower(): v for k, v in self.headers.items()}
                state.requests.append(Received(headers, body, status))
            state.answering.wait(state.hold)
            self.send_response(status)
            if status != 200 and state.retry_after is not None:
                self.send_header("retry-after", state.retry_after)
            trickle = state.trickle
            self.send_header("content-length", "0" if trickle is None else str(TRICKLED))
            self.end_headers()
            with state.lock:
                state.answered += 1
            if trickle is not None:
                self.wfile.flush()
                try:
                    for _ in range(TRICKLED):
                        time.sleep(trickle)
                        self.wfile.write(b".")
                        self.wfile.flush()
                except OSError:
                    pass  # the sender gave up: what a trickle is for

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
