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
        site_local = isinstance(checked, ipaddress.IPv6Address) and checked.is_site_local
        if checked.is_global and not checked.is_multicast and not site_local:
            return None
        return f"{address} is {_kind(checked)}"


#: IPv6 forms whose low 32 bits are an IPv4 address a translator or tunnel reaches:
#: SIIT (``::ffff:0:a.b.c.d``), IPv4-compatible (``::a.b.c.d``) and NAT64 (RFC 6052).
_EMBEDDING_96 = tuple(
    ipaddress.IPv6Network(net) for net in ("::ffff:0:0:0/96", "::/96", "64:ff9b::/96")
)
#: Local-use NAT64 (RFC 8215): the prefix length is the site's choice, so the IPv4
#: address inside cannot be located; it translates into the site's own network.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def _unmapped(address: Address) -> Address:
    """The IPv4 address an IPv6 one carries (``::ffff:169.254.169.254``, 6to4, NAT64,
    SIIT, IPv4-compatible), which is where it leads: judge that one."""
    if not isinstance(address, ipaddress.IPv6Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:  # 2002:a.b.c.d::/48
        return address.sixtofour
    if address in _LOCAL_NAT64:
        return ipaddress.IPv4Address("10.0.0.0")  # judged as the private network it is
    if int(address) > 1 and any(address in net for net in _EMBEDDING_96):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _kind(address: Address) -> str:
    for test, name in (
        # Before "private": 0.0.0.0 and :: count as private too, and reach this host.
        (address.is_unspecified, "the unspecified address (it reaches this host)"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address (cloud metadata lives there)"),
        (address.is_private, "a private-network address"),
        (address.is_multicast, "a multicast address"),
        (
            isinstance(address, ipaddress.IPv6Address) and address.is_site_local,
            "a site-local address (fec0::/10)",
        ),
    ):
        if test:
            return name
    return "not a public address"
