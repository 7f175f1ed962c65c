"""A real Prometheus and a real Alertmanager (Debian's /usr/bin/prometheus and
/usr/bin/prometheus-alertmanager) on free loopback ports, each with its own data directory under
the test's temporary directory, stopped by their own process handles."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.live_stack import START_SECONDS, Process, free_port, spawn


def _binary(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: scripts/dev.sh installs Debian's prometheus and prometheus-alertmanager"
    return path


async def _wait_ready(process: Process, url: str) -> None:
    deadline = time.monotonic() + START_SECONDS
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            assert process.popen.poll() is None, f"{process.name} exited:\n{process.log()[-4000:]}"
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{process.name} not ready:\n{process.log()[-4000:]}"
            await asyncio.sleep(0.2)


@asynccontextmanager
async def running_prometheus(config: Path, workdir: Path) -> AsyncIterator[str]:
    """Prometheus with ``config``; yields its base URL."""
    port = free_port()
    process = spawn(
        "prometheus",
        [_binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        {"PATH": "/usr/bin:/bin"},
        workdir,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_ready(process, f"{url}/-/ready")
        yield url
    finally:
        process.stop()


@asynccontextmanager
async def running_alertmanager(config: Path, workdir: Path) -> AsyncIterator[str]:
    """Alertmanager with ``config``, clustering off (it would listen on 9094); yields its URL."""
    port = free_port()
    process = spawn(
        "alertmanager",
        [_binary("prometheus-alertmanager"), f"--config.file={config}", f"--storage.path={workdir / 'am'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
        {"PATH": "/usr/bin:/bin"},
        workdir,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_ready(process, f"{url}/-/ready")
        yield url
    finally:
        process.stop()


async def query(http: httpx.AsyncClient, prometheus: str, expr: str) -> list[dict[str, Any]]:
    """An instant query's result vector; an invalid expression fails the test with its error."""
    response = await http.get(f"{prometheus}/api/v1/query", params={"query": expr})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def alerts(http: httpx.AsyncClient, prometheus: str) -> list[dict[str, Any]]:
    response = await http.get(f"{prometheus}/api/v1/alerts")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["data"]["alerts"]
    return found
