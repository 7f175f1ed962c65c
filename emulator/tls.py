"""TLS material for the emulator: a throw-away CA made at start-up with trustme.

The CA certificate is written as PEM to a path of the caller's choice so that clients in other
processes (the app, benchmarks) can trust exactly this CA without touching the system store or
`SSL_CERT_FILE`. The leaf certificate names the loopback addresses, the configured host and the
real provider host names, so a client may connect either by address or with the real SNI name.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from pathlib import Path

import trustme

# Real provider names, so a client that keeps its production SNI/Host still verifies.
PROVIDER_HOST_NAMES = (
    "fcm.googleapis.com",
    "oauth2.googleapis.com",
    "api.push.apple.com",
    "api.sandbox.push.apple.com",
    "api.development.push.apple.com",
)


class EmulatorTls:
    """Owns the CA and the server certificate; hands out server-side SSL contexts."""

    def __init__(self, *, extra_hosts: tuple[str, ...] = ()) -> None:
        self.ca = trustme.CA(organization_name="Chuong provider emulator")
        # "emulator" is the docker-compose service name other containers dial.
        identities = ["localhost", "127.0.0.1", "::1", "emulator", *PROVIDER_HOST_NAMES]
        for host in extra_hosts:
            if host and host not in identities and not _is_wildcard_address(host):
                identities.append(host)
        self._leaf = self.ca.issue_cert(*identities)

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem.bytes()

    def write_ca(self, path: str | os.PathLike[str]) -> Path:
        """Write the CA certificate atomically (readers polling for the file never see half)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        partial.write_bytes(self.ca_pem)
        partial.replace(target)
        return target

    def server_context(self, alpn_protocols: list[str]) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._leaf.configure_cert(context)
        # HTTP/2 forbids TLS renegotiation and compression (RFC 9113 §9.2); 1.2 is the floor.
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.options |= ssl.OP_NO_COMPRESSION
        context.set_alpn_protocols(alpn_protocols)
        return context


def client_ssl_context(ca_path: str | os.PathLike[str], *, alpn: list[str] | None = None) -> ssl.SSLContext:
    """An SSL context that trusts only the emulator CA found at `ca_path`.

    Independent of `SSL_CERT_FILE`/`REQUESTS_CA_BUNDLE`: the CA is loaded explicitly.
    """
    context = ssl.create_default_context(cafile=os.fspath(ca_path))
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def _is_wildcard_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False
