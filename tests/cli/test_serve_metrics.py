"""`chuong serve --workers 2` (the image's command) answers GET /metrics for both of its processes
added up: a scrape reaches one of them at random, and counters that jumped between two processes'
own values would make every rate Prometheus computes (the API's error and latency alerts) wrong."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _healthz_count(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "chuong_http_requests_total" and sample.labels.get("route") == "/healthz"
    )


def _wait_until_up(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert server.poll() is None, "chuong serve exited"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "chuong serve did not answer within a minute"
        time.sleep(0.3)


def test_two_api_processes_report_their_requests_together(database_url, redis):
    port = _free_port()
    env = {**os.environ, "CHUONG_DATABASE_URL": database_url}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = subprocess.Popen(  # noqa: S603 (our own CLI)
        [sys.executable, "-m", "cli", "serve", "--port", str(port), "--workers", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{base}/healthz", server)
        answered = 1
        # A new connection each time: the kernel hands them to either process.
        for _ in range(30):
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
            answered += 1
        counts = [_healthz_count(httpx.get(f"{base}/metrics", timeout=5).text) for _ in range(8)]
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert counts == [answered] * 8
