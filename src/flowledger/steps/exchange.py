"""The deadline of a whole HTTP exchange, for ``sys.http_request`` and the worker's
webhook deliveries alike.

httpx's timeouts bound each operation alone (a connect, one read), so a server that
answers and then trickles a byte at a time would hold the caller for as long as it
likes. httpx is imported where used: it costs a cold start ~100 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


@contextlib.asynccontextmanager
async def whole_exchange(seconds: float) -> AsyncIterator[None]:
    """Bound what runs inside (connect, send, every redirect, the whole body) by
    ``seconds``; an ``httpx.TimeoutException`` once they pass, as httpx's own timeouts
    raise, so one ``except`` takes both."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        import httpx

        raise httpx.TimeoutException(f"the exchange did not finish within {seconds:g}s") from None
