"""The emulator's certificate: names clients may dial, CA trust only through the written file."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from emulator import Emulator, EmulatorConfig
from emulator.tls import client_ssl_context


async def _handshake(port: int, ca_path: Path, server_hostname: str, alpn: list[str]) -> str | None:
    context = client_ssl_context(ca_path, alpn=alpn)
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=server_hostname)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        return str(ssl_object.selected_alpn_protocol())
    finally:
        writer.close()


async def test_extra_cert_hosts_and_provider_names_verify(tmp_path: Path) -> None:
    config = EmulatorConfig(ca_path=tmp_path / "ca.pem", cert_hosts=("push.internal",))
    async with Emulator(config) as emulator:
        for name in ("push.internal", "emulator", "localhost", "fcm.googleapis.com"):
            assert await _handshake(emulator.fcm_port, emulator.ca_path, name, ["h2", "http/1.1"]) == "h2"
        assert await _handshake(emulator.apns_port, emulator.ca_path, "api.push.apple.com", ["h2"]) == "h2"
        with pytest.raises(ssl.SSLCertVerificationError):
            await _handshake(emulator.fcm_port, emulator.ca_path, "elsewhere.example", ["h2"])


async def test_each_emulator_has_its_own_ca(emulator: Emulator, tmp_path: Path) -> None:
    async with Emulator(EmulatorConfig(ca_path=tmp_path / "other-ca.pem")) as other:
        with pytest.raises(ssl.SSLCertVerificationError):
            await _handshake(emulator.fcm_port, other.ca_path, "localhost", ["h2"])
