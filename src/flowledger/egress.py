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

The policy lives here (config reads it); the transport that applies it is
``flowledger.steps.transport``, so that httpx is imported only when a client is made.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_ENV = "FLOWLEDGER_HTTP_ALLOW"


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
