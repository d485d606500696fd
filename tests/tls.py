"""One TLS context for every httpx client the tests make. The test servers speak plain
HTTP on loopback, but httpx builds a context per client unless given one (the CA
bundle parsed again each time, ~50 ms): over the suite's thousands of clients that was
tens of seconds (the auth matrix alone: 470 clients)."""

from __future__ import annotations

import ssl

CONTEXT = ssl.create_default_context()
