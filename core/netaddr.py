"""Which network a client address belongs to, for limits and for the record of registrations.

One IPv6 subscriber is given a whole /64 and picks addresses in it at will, so an IPv6 address
alone is no identity: limits keyed by it could be dodged by changing the address on every
request. IPv4 addresses are scarce and carriers put thousands of phones behind one (carrier
NAT), so a single IPv4 address already stands for many people.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from core.config import get_settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def network_of(ip: str | None) -> Network | None:
    """The /24 (IPv4) or /64 (IPv6) prefix of ``ip`` (lengths from settings); None if ``ip`` is
    not an address (a test transport, a missing peer)."""
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    settings = get_settings()
    prefix = (
        settings.device_registration_ipv4_prefix
        if isinstance(address, ipaddress.IPv4Address)
        else settings.device_registration_ipv6_prefix
    )
    return ipaddress.ip_network(f"{address}/{prefix}", strict=False)


@lru_cache(maxsize=4096)  # a pure function of the address, asked on every request
def address_identity(ip: str) -> str:
    """The key of per-address limits: an IPv4 address as it is, an IPv6 address by its /64."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
