"""The client address behind proxies (api/client_ip.py). Kept hand-written rather than uvicorn's
ProxyHeadersMiddleware, which passes a non-IP hop on as the address (docs/architecture.md,
"Hand-written on purpose")."""

from __future__ import annotations

import ipaddress

import pytest
from starlette.requests import HTTPConnection

from api import client_ip
from core.config import get_settings


@pytest.fixture
def trusted(monkeypatch):
    monkeypatch.setattr(get_settings(), "trusted_proxies", ["10.0.0.5/24", "192.0.2.1/32"])
    client_ip._trusted.cache_clear()
    yield
    monkeypatch.undo()
    client_ip._trusted.cache_clear()


def connection(peer: str, forwarded: str | None = None) -> HTTPConnection:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return HTTPConnection({"type": "http", "client": (peer, 4711), "headers": headers})


@pytest.mark.usefixtures("trusted")
@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.9", "198.51.100.7", "203.0.113.9"),  # untrusted peer: its header is a claim
        ("10.0.0.9", "198.51.100.7", "198.51.100.7"),  # "10.0.0.5/24" is the network 10.0.0.0/24
        ("10.0.0.9", "6.6.6.6, 198.51.100.7, 192.0.2.1", "198.51.100.7"),  # from the right
        ("10.0.0.9", "not-an-ip", "10.0.0.9"),  # never a non-address
        ("10.0.0.9", "a" * 100, "10.0.0.9"),
        ("10.0.0.9", "10.0.0.1, 192.0.2.1", "10.0.0.9"),  # only proxies: the peer
        ("10.0.0.9", None, "10.0.0.9"),
        ("::ffff:10.0.0.9", "198.51.100.7", "198.51.100.7"),  # an IPv4 proxy on a dual-stack socket
    ],
)
def test_the_first_untrusted_hop_from_a_trusted_proxy_is_the_client(peer, forwarded, client):
    found = client_ip.client_ip(connection(peer, forwarded))
    assert found == client
    ipaddress.ip_address(found)
