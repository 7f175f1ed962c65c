"""The client's address: the peer, or the X-Forwarded-For hop set by a trusted proxy."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from starlette.requests import HTTPConnection

from core.config import get_settings


@lru_cache
def _trusted() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in get_settings().trusted_proxies)


def _is_trusted(address: str) -> bool:
    return _in_networks(address, _trusted())


@lru_cache(maxsize=4096)
def _in_networks(address: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    """Every request asks this of its peer (and of its forwarded hops): parsed once per address
    and set of trusted networks, not once per request."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # A dual-stack listener reports an IPv4 proxy as ::ffff:10.0.0.5; it is still 10.0.0.5.
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


def client_ip(connection: HTTPConnection) -> str:
    peer = connection.client.host if connection.client else "0.0.0.0"  # noqa: S104 (a value, not a bind)
    if not _is_trusted(peer):
        return peer
    # Walk X-Forwarded-For from the right, skipping our own proxies: the first untrusted hop is
    # the client. Anything left of it was written by the client and cannot be believed.
    hops = [hop.strip() for hop in connection.headers.get("x-forwarded-for", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return peer
