"""Where the engine's HTTP client may connect: public addresses only, unless allowed.

A workflow's URL is data (often rendered from a trigger or an earlier response),
so without a guard any definition could make the engine call the cloud metadata
service (``169.254.169.254``), a database on ``localhost`` or a service inside the
private network (SSRF). Every connection of the engine's client — each redirect hop
included — resolves its host once, refuses the request when *any* address it
resolves to is not a public one, and then connects to the address it checked (so a
DNS answer that changes between check and connect cannot slip through), with the
original host name kept for the ``Host`` header and TLS.

``FLOWLEDGER_HTTP_ALLOW`` opens it up: a comma-separated list of host names
(``internal.example.com``), addresses (``127.0.0.1``, ``::1``) and networks
(``10.0.0.0/8``); ``*`` turns the guard off.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_ENV = "FLOWLEDGER_HTTP_ALLOW"


class EgressRefused(httpx.ConnectError):
    """The request would reach an address the egress policy does not allow."""


@dataclass(frozen=True)
class EgressPolicy:
    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()
    allow_all: bool = False

    @classmethod
    def parse(cls, text: str | None) -> EgressPolicy:
        """The policy ``FLOWLEDGER_HTTP_ALLOW`` describes (raises ValueError on a bad entry)."""
        hosts: set[str] = set()
        networks: list[Network] = []
        for raw in (text or "").split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            if entry == "*":
                return cls(allow_all=True)
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if not all(part.isalnum() or part == "-" for part in entry.replace(".", " ").split()):
                raise ValueError(
                    f"{ALLOW_ENV}: {raw.strip()!r} is neither a host name, an address nor a "
                    "network like 10.0.0.0/8"
                )
            hosts.add(entry.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def problem(self, host: str, address: Address) -> str | None:
        """Why connecting to ``address`` (resolved from ``host``) is refused, or None."""
        if self.allow_all or host.lower().rstrip(".") in self.hosts:
            return None
        checked = _unmapped(address)
        if any(checked in net or address in net for net in self.networks):
            return None
        if checked.is_global and not checked.is_multicast:
            return None
        return f"{address} is {_kind(checked)}"


def _unmapped(address: Address) -> Address:
    """``::ffff:169.254.169.254`` is 169.254.169.254: judge the IPv4 address inside."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _kind(address: Address) -> str:
    for test, name in (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address (cloud metadata lives there)"),
        (address.is_private, "a private-network address"),
        (address.is_multicast, "a multicast address"),
        (address.is_unspecified, "the unspecified address"),
    ):
        if test:
            return name
    return "not a public address"


class GuardedTransport(httpx.AsyncBaseTransport):
    """An HTTP transport that connects only where the policy allows (see the module doc)."""

    def __init__(self, policy: EgressPolicy, inner: httpx.AsyncBaseTransport | None = None):
        self.policy = policy
        self.inner = inner or httpx.AsyncHTTPTransport()

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
        # Connect to the address just checked, whatever DNS says a moment later.
        request.url = url.copy_with(host=str(addresses[0]))
        if url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _resolve(host: str, port: int) -> list[Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
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
