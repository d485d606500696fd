"""The HTTP transport that applies the egress policy (see ``flowledger.egress``).

Apart from the policy so that reading settings does not import httpx (a cold start's
~100 ms): the engine builds its client, and with it this transport, on first use.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import Iterable

import httpx

from flowledger.egress import ALLOW_ENV, Address, EgressPolicy


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's one TLS client context (httpx's defaults: its CA bundle, TLS 1.2+).
    Building one parses the CA bundle, ~50 ms of CPU: each engine building its own made
    a process that opens engines one after another pay it per engine. A context is
    safe to share between connections and threads once it is configured."""
    return httpx.create_ssl_context()


class EgressRefused(httpx.ConnectError):
    """The request would reach an address the egress policy does not allow."""

    #: What ``sys.http_request`` checks (it does not import this module: httpx is lazy).
    refused_by_policy = True


class GuardedTransport(httpx.AsyncBaseTransport):
    """An HTTP transport that connects only where the policy allows (see the module doc)."""

    def __init__(self, policy: EgressPolicy, inner: httpx.AsyncBaseTransport | None = None):
        self.policy = policy
        self.inner = inner or httpx.AsyncHTTPTransport(verify=tls_context())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.policy.allow_all:
            return await self.inner.handle_async_request(request)
        url = request.url
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        addresses = await _resolve(host, port)
        for address in addresses:
            problem = self.policy.problem(host, address)
            if problem is not None:
                shown = host if str(address) == host else f"{host} ({address})"
                raise EgressRefused(
                    f"refused to connect to {shown}: {problem}; flowledger only calls public "
                    f"addresses unless {ALLOW_ENV} allows the host or its network",
                    request=request,
                )
        # Connect to the address just checked, whatever DNS says a moment later. A copy:
        # the caller's request keeps its URL, so a relative redirect stays on its host.
        extensions = dict(request.extensions)
        if url.scheme == "https":
            extensions["sni_hostname"] = host
        routed = httpx.Request(
            request.method,
            url.copy_with(host=str(addresses[0])),
            headers=request.headers,
            stream=request.stream,
            extensions=extensions,
        )
        return await self.inner.handle_async_request(routed)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _resolve(host: str, port: int) -> list[Address]:
    # ``localhost.`` is ``localhost``: the root's dot must not send the name to DNS.
    host = host.strip("[]").rstrip(".") or host
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpx.ConnectError(f"cannot resolve {host}: {exc.strerror}") from None
    found = _unique(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
    if not found:
        raise httpx.ConnectError(f"{host} resolves to no address")
    return found


def _unique(addresses: Iterable[Address]) -> list[Address]:
    seen: list[Address] = []
    for address in addresses:
        if address not in seen:
            seen.append(address)
    return seen
