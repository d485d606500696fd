"""The engine's HTTP client, made on first use.

Importing httpx and building a client costs a cold start about 100 ms, and most runs never
send a request. :class:`LazyClient` stands where the ``httpx.AsyncClient`` goes (the
services, each ``StepContext.http``) and builds the real one the first time any attribute
is read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import httpx


class LazyClient:
    def __init__(self, make: Callable[[], httpx.AsyncClient]) -> None:
        self._make = make
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self._make()
        return self._client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client(), name)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def lazy_client(make: Callable[[], httpx.AsyncClient]) -> httpx.AsyncClient:
    """A client that is built by ``make`` when first used (typed as the real one)."""
    return cast("httpx.AsyncClient", LazyClient(make))
