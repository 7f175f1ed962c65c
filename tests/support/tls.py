"""Certificates from a throw-away CA (trustme), and a throw-away redis-server speaking only TLS,
for the tests of TLS to PostgreSQL, Redis and the reverse proxy. The machine's shared services are
never touched."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis
import trustme

from tests.support.scratch_postgres import free_port


@dataclass(frozen=True)
class CertFiles:
    ca: Path  # the CA certificate clients trust
    cert: Path  # the certificate chain
    key: Path  # its private key (0600)


def issue(directory: Path, ca: trustme.CA, *names: str, stem: str = "server") -> CertFiles:
    """A certificate for ``names`` (host names or IP addresses) signed by ``ca``, as PEM files."""
    directory.mkdir(parents=True, exist_ok=True)
    issued = ca.issue_cert(*names)
    files = CertFiles(ca=directory / "ca.pem", cert=directory / f"{stem}.crt", key=directory / f"{stem}.key")
    ca.cert_pem.write_to_path(str(files.ca))
    files.cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(files.key))
    os.chmod(files.key, 0o600)
    return files


@dataclass(frozen=True)
class ScratchRedis:
    port: int

    def url(self, host: str = "localhost", database: int = 0) -> str:
        return f"rediss://{host}:{self.port}/{database}"


@contextlib.contextmanager
def scratch_tls_redis(server: CertFiles, *, client_certificates: bool = False) -> Iterator[ScratchRedis]:
    """redis-server on a free port, TLS only (no plain port), stopped when the block ends.
    ``client_certificates``: clients must show a certificate of the same CA (Redis's default)."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError("redis-server is missing (Debian's redis-server package)")
    port = free_port()
    directory = server.cert.parent
    process = subprocess.Popen(  # noqa: S603
        [executable, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(server.cert), "--tls-key-file", str(server.key),
         "--tls-ca-cert-file", str(server.ca),
         "--tls-auth-clients", "yes" if client_certificates else "no",
         "--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_until_ready(port, server, process)
        yield ScratchRedis(port=port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_until_ready(port: int, server: CertFiles, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode} (does it support TLS?)")
        client = redis.Redis(
            host="127.0.0.1",
            port=port,
            ssl=True,
            ssl_ca_certs=str(server.ca),
            ssl_certfile=str(server.cert),  # accepted whether or not the server asks for one
            ssl_keyfile=str(server.key),
            socket_connect_timeout=0.5,
        )
        try:
            if client.ping():
                return
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
        finally:
            client.close()
