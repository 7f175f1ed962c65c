"""The service as it runs: `python -m emulator`, `chuong serve` and `chuong worker --queue high`,
each a process of its own on free ports, against the test's database and Redis, with the metrics
token set. For what only the real processes show: their live ``/metrics`` as Prometheus scrapes
them (tests/deploy/test_dashboard.py, test_live_prometheus.py).

Each process writes to a log file in ``workdir`` (read back on failure, and for the worker's
``worker_metrics_listening`` line: it takes the first free port from the one it is given, so its
own line says which). Only the processes started here are stopped here, by their own handles.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from auth.roles import Role
from emulator.app_settings import app_settings, as_env
from emulator.server import READY_PREFIX
from tests.support.factories import Account, make_account, make_unit, sign_in

ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 90.0  # two cores shared by several test runs: imports alone can take seconds


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


@dataclass
class LiveStack:
    api_url: str
    worker_metrics_url: str
    control_url: str
    metrics_token: str
    workdir: Path
    processes: list[Process] = field(default_factory=list)
    sender: dict[str, str] = field(default_factory=dict)  # a system admin's Authorization header

    @property
    def metrics_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.metrics_token}"}

    def logs(self) -> str:
        """Every process's log, for an assertion message."""
        return "\n".join(f"--- {process.name} ---\n{process.log()[-4000:]}" for process in self.processes)

    async def register_fcm_devices(self, http: httpx.AsyncClient, count: int) -> list[str]:
        ids = []
        for index in range(count):
            token = f"ok-fcm-live-{secrets.token_hex(4)}-{index}"
            response = await http.post(
                f"{self.api_url}/v1/devices",
                json={"app": "portal", "platform": "android", "token": token, "locale": "vi"},
            )
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        return ids

    async def push(self, http: httpx.AsyncClient, devices: list[str]) -> str:
        """A high-priority push to named devices (no second approver needed), through the API."""
        response = await http.post(
            f"{self.api_url}/v1/notifications",
            headers=self.sender,
            json={
                "app": "portal",
                "kind": "breaking_news",
                "priority": "high",
                "title": {"vi": "Tin"},
                "body": {"vi": "Nội dung"},
                "audience": {"devices": devices},
            },
        )
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    async def faults(self, http: httpx.AsyncClient, **changes: Any) -> None:
        response = await http.put(f"{self.control_url}/faults", json=changes)
        assert response.status_code == 200, response.text

    async def emulator_stats(self, http: httpx.AsyncClient) -> dict[str, Any]:
        response = await http.get(f"{self.control_url}/stats")
        assert response.status_code == 200, response.text
        stats: dict[str, Any] = response.json()
        return stats


def spawn(name: str, argv: list[str], env: dict[str, str], workdir: Path) -> Process:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(  # noqa: S603 - the project's own modules, by the test's python
            argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
    return Process(name=name, popen=popen, log_path=log_path)


async def _wait_for(what: str, check: Any, processes: list[Process]) -> Any:
    deadline = time.monotonic() + START_SECONDS
    while True:
        for process in processes:
            assert process.popen.poll() is None, f"{process.name} exited:\n{process.log()[-4000:]}"
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} not ready in {START_SECONDS:.0f} s"
        await asyncio.sleep(0.2)


def _emulator_addresses(process: Process) -> dict[str, Any] | None:
    for line in process.log().splitlines():
        if line.startswith(READY_PREFIX):
            addresses: dict[str, Any] = json.loads(line[len(READY_PREFIX) :])
            return addresses
    return None


def _worker_metrics_port(process: Process) -> int | None:
    for line in process.log().splitlines():
        if line.startswith("{") and '"worker_metrics_listening"' in line:
            return int(json.loads(line)["port"])
    return None


async def _answers(url: str, headers: dict[str, str] | None = None) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            return (await http.get(url, headers=headers)).status_code == 200
    except httpx.HTTPError:
        return False


@asynccontextmanager
async def live_stack(database_url: str, workdir: Path) -> AsyncIterator[LiveStack]:
    """The emulator, the API and one high-queue worker, running; a system admin signed in."""
    token = secrets.token_urlsafe(32)
    processes: list[Process] = []
    try:
        emulator = spawn(
            "emulator",
            [sys.executable, "-m", "emulator", "--fcm-port=0", "--apns-port=0", "--control-port=0",
             f"--ca-path={workdir / 'emulator' / 'ca.pem'}"],
            {**os.environ, "PYTHONUNBUFFERED": "1"},
            workdir,
        )  # fmt: skip
        processes.append(emulator)

        async def emulator_ready() -> dict[str, Any] | None:
            return _emulator_addresses(emulator)

        addresses = await _wait_for("the emulator", emulator_ready, processes)
        env = {
            **os.environ,
            **as_env(app_settings(addresses)),
            "CHUONG_DATABASE_URL": database_url,
            "CHUONG_METRICS_TOKEN": token,
            "CHUONG_WORKER_METRICS_HOST": "127.0.0.1",
            "CHUONG_WORKER_METRICS_PORT": str(free_port()),
            "CHUONG_LOG_JSON": "true",
            "CHUONG_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # one API process: its own registry
        api_port = free_port()
        processes.append(
            spawn("api", [sys.executable, "-m", "cli", "serve", "--port", str(api_port)], env, workdir)
        )
        worker = spawn("worker", [sys.executable, "-m", "cli", "worker", "--queue", "high"], env, workdir)
        processes.append(worker)
        api_url = f"http://127.0.0.1:{api_port}"
        await _wait_for("the API", lambda: _answers(f"{api_url}/readyz"), processes)

        async def worker_port() -> int | None:
            return _worker_metrics_port(worker)

        port = await _wait_for("the worker's metrics", worker_port, processes)
        stack = LiveStack(
            api_url=api_url,
            worker_metrics_url=f"http://127.0.0.1:{port}/metrics",
            control_url=str(addresses["control_url"]),
            metrics_token=token,
            workdir=workdir,
            processes=processes,
        )
        await _wait_for(
            "the worker's metrics",
            lambda: _answers(stack.worker_metrics_url, stack.metrics_headers),
            processes,
        )
        admin: Account = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
        async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
            stack.sender = await sign_in(http, admin)
        yield stack
    finally:
        for process in reversed(processes):
            process.stop()
