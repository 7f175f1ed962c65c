"""deploy/nginx/chuong.conf, the reverse-proxy example: Debian's nginx accepts it (`nginx -t`), and
run for real in front of a recording upstream it does what docs/security.md says: TLS 1.2+ only,
HSTS, HTTP sent to HTTPS, the client's address appended to X-Forwarded-For so that
api/client_ip.py finds it, Server-Sent Events passed on unbuffered, bodies above
CHUONG_MAX_BODY_BYTES refused at the proxy.

Only ports, file paths and the upstream address are changed for the test; every directive is the
example's. nginx is a Debian package that scripts/dev.sh installs: a missing one fails, never
skips.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import trustme
from starlette.requests import HTTPConnection

from api import client_ip
from core.config import Settings, get_settings
from tests.support.scratch_postgres import free_port
from tests.support.tls import CertFiles, issue

# Its module fixture (built once) is expensive: under pytest-xdist, its tests share one worker.
pytestmark = pytest.mark.xdist_group("nginx_example")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "nginx" / "chuong.conf"
SERVER_NAME = "chuong.example.vn"
# nginx sees the test client at this loopback address, and the upstream sees nginx at 127.0.0.1:
# two addresses, so that "the proxy's address" and "the client's" can be told apart.
CLIENT_ADDRESS = "127.0.0.2"
STREAM_PATH = "/v1/inbox/stream"


def nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if found is None:
        pytest.fail("nginx is missing: run scripts/dev.sh test (it installs Debian's nginx-light)")
    return found


@dataclass(frozen=True)
class Seen:
    path: str
    peer: str
    headers: dict[str, str]  # names in lower case


@dataclass
class Upstream:
    """A stand-in for `chuong serve`: records what reached it; the stream path sends one event,
    waits until the test has received it, then sends a second."""

    port: int
    seen: list[Seen] = field(default_factory=list)
    first_event_received: threading.Event = field(default_factory=threading.Event)


@contextlib.contextmanager
def recording_upstream() -> Iterator[Upstream]:
    upstream = Upstream(port=free_port())

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # the body ends when the connection does

        def do_GET(self) -> None:
            headers = {name.lower(): value for name, value in self.headers.items()}
            upstream.seen.append(Seen(path=self.path, peer=self.client_address[0], headers=headers))
            if self.path == STREAM_PATH:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self.wfile.write(b"event: first\ndata: {}\n\n")
                self.wfile.flush()
                # Buffered by the proxy, the first event would never reach the client: no second.
                if upstream.first_event_received.wait(timeout=10):
                    self.wfile.write(b"event: second\ndata: {}\n\n")
                return
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", upstream.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield upstream
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Proxy:
    directory: Path
    config: Path
    https_port: int
    http_port: int
    certificate: CertFiles


def render(directory: Path, *, upstream_port: int) -> Proxy:
    """The example with test ports, certificate files and upstream; a minimal nginx.conf around it."""
    certificate = issue(directory / "tls", trustme.CA(), SERVER_NAME)
    https_port, http_port = free_port(), free_port()
    text = EXAMPLE.read_text(encoding="utf-8")
    replacements = [
        (r"listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        (r"listen 80;", f"listen 127.0.0.1:{http_port};"),
        (r"\n\s*listen \[::\]:\d+[^;]*;", ""),
        (r"/etc/ssl/chuong/fullchain\.pem", str(certificate.cert)),
        (r"/etc/ssl/chuong/privkey\.pem", str(certificate.key)),
        (r"server 127\.0\.0\.1:8000;", f"server 127.0.0.1:{upstream_port};"),
    ]
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement, text)
        assert count, f"the example no longer has {pattern!r}: update this test"
    (directory / "chuong.conf").write_text(text, encoding="utf-8")
    main = [
        # As root, nginx's workers would drop to "nobody", who cannot read the test's private files.
        *(["user root;"] if os.geteuid() == 0 else []),
        "worker_processes 1;",
        "daemon off;",
        f"pid {directory}/nginx.pid;",
        f"error_log {directory}/error.log;",
        "events { worker_connections 64; }",
        "http {",
        "  access_log off;",
        *(
            f"  {kind}_temp_path {directory}/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        ),
        f"  include {directory}/chuong.conf;",
        "}",
    ]
    config = directory / "nginx.conf"
    config.write_text("\n".join(main) + "\n", encoding="utf-8")
    return Proxy(directory, config, https_port, http_port, certificate)


@contextlib.contextmanager
def running(proxy: Proxy) -> Iterator[None]:
    process = subprocess.Popen(  # noqa: S603
        [nginx(), "-p", str(proxy.directory), "-c", str(proxy.config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", proxy.https_port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                error = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"nginx did not start: {error}")
            time.sleep(0.05)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with recording_upstream() as server:
        yield server


@pytest.fixture(scope="module")
def proxy(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    rendered = render(tmp_path_factory.mktemp("nginx"), upstream_port=upstream.port)
    with running(rendered):
        yield rendered


def client(proxy: Proxy, *, context: ssl.SSLContext | None = None) -> httpx.Client:
    if context is None:
        context = ssl.create_default_context(cafile=str(proxy.certificate.ca))
    # The TLS name is the server name; the TCP connection goes to the test port on loopback.
    transport = httpx.HTTPTransport(verify=context, local_address=CLIENT_ADDRESS)
    return httpx.Client(transport=transport, base_url=f"https://{SERVER_NAME}:{proxy.https_port}", timeout=10)


@pytest.fixture(autouse=True)
def _resolve_server_name(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        return real("127.0.0.1" if host == SERVER_NAME else host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_nginx_accepts_the_example(tmp_path: Path) -> None:
    rendered = render(tmp_path, upstream_port=free_port())
    checked = subprocess.run(  # noqa: S603
        [nginx(), "-t", "-p", str(rendered.directory), "-c", str(rendered.config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_tls_answers_carry_hsts_and_plain_http_is_sent_to_https(proxy: Proxy) -> None:
    with client(proxy) as http:
        answer = http.get("/v1/units")
    assert answer.status_code == 200
    max_age = re.search(r"max-age=(\d+)", answer.headers["strict-transport-security"])
    assert max_age and int(max_age[1]) >= 365 * 24 * 3600
    assert "includeSubDomains" in answer.headers["strict-transport-security"]

    plain = httpx.get(f"http://127.0.0.1:{proxy.http_port}/v1/units", headers={"Host": SERVER_NAME})
    assert plain.status_code == 301
    assert plain.headers["location"] == f"https://{SERVER_NAME}/v1/units"


def test_tls_1_2_and_1_3_only(proxy: Proxy) -> None:
    """Debian's OpenSSL will not speak TLS 1.0/1.1 even when asked to (security level 2), so an
    old-protocol handshake would fail whatever the file said: the directive is read instead."""
    protocols = re.search(r"^\s*ssl_protocols ([^;]+);", EXAMPLE.read_text(encoding="utf-8"), re.MULTILINE)
    assert protocols and protocols[1].split() == ["TLSv1.2", "TLSv1.3"]
    for low, high in ((ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2), (ssl.TLSVersion.TLSv1_3, None)):
        context = ssl.create_default_context(cafile=str(proxy.certificate.ca))
        context.minimum_version = low
        if high is not None:
            context.maximum_version = high
        with client(proxy, context=context) as http:
            assert http.get("/v1/units").status_code == 200


def test_the_api_finds_the_client_address_behind_the_proxy(
    proxy: Proxy, upstream: Upstream, monkeypatch
) -> None:
    with client(proxy) as http:
        # A client's own X-Forwarded-For is kept (left of the real hop), never believed.
        http.get("/v1/auth/me", headers={"X-Forwarded-For": "6.6.6.6"})
    seen = next(s for s in reversed(upstream.seen) if s.path == "/v1/auth/me")
    headers = seen.headers
    assert headers["x-forwarded-for"] == f"6.6.6.6, {CLIENT_ADDRESS}"
    assert headers["x-forwarded-proto"] == "https"
    assert headers["host"] == SERVER_NAME

    # The API behind it, with the proxy in CHUONG_TRUSTED_PROXIES, sees the client's address.
    monkeypatch.setattr(get_settings(), "trusted_proxies", [seen.peer])
    client_ip._trusted.cache_clear()
    try:
        connection = HTTPConnection(
            {
                "type": "http",
                "client": (seen.peer, 40000),
                "headers": [(b"x-forwarded-for", headers["x-forwarded-for"].encode())],
            }
        )
        assert client_ip.client_ip(connection) == CLIENT_ADDRESS
    finally:
        monkeypatch.undo()
        client_ip._trusted.cache_clear()


def test_event_streams_are_not_buffered(proxy: Proxy, upstream: Upstream) -> None:
    events = []
    with (
        client(proxy) as http,
        http.stream("GET", STREAM_PATH, headers={"Accept": "text/event-stream"}) as answer,
    ):
        for line in answer.iter_lines():
            if line.startswith("event: "):
                events.append(line.removeprefix("event: "))
                upstream.first_event_received.set()
    assert events == ["first", "second"]


def test_bodies_above_the_api_limit_stop_at_the_proxy(proxy: Proxy, upstream: Upstream) -> None:
    limit = Settings.model_fields["max_body_bytes"].default
    before = len(upstream.seen)
    with client(proxy) as http:
        assert http.post("/v1/devices", content=b"x" * limit).status_code == 200
        assert http.post("/v1/devices", content=b"x" * (limit + 1)).status_code == 413
    assert len(upstream.seen) == before + 1
