"""What the image runs, without a Docker engine: the wheel built from pyproject.toml, installed into
a fresh virtual environment outside the checkout, migrates an empty database, serves the API and
delivers a push through its worker to the provider emulator (issue 14, item 1).

The Dockerfile does the same in two stages (build the wheel, install it into a slim image with no
build tools); tests/deploy/test_dockerfile.py lints it with hadolint.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from core.db import configure_engine, dispose_engine, make_engine
from emulator import Emulator, EmulatorConfig
from emulator.app_settings import as_env
from tests.notifications.helpers import broadcast, central_sender
from tests.support.wheel import build_wheel

if TYPE_CHECKING:  # imported by name, pytest would try to collect the class
    from tests.support.databases import TestDatabases

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "ok-fcm-installed-wheel"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ of a fresh virtual environment holding the wheel and its declared dependencies."""
    wheel = build_wheel(tmp_path_factory)
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)  # noqa: S603
    subprocess.run(  # noqa: S603 - the fresh environment's pip
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        check=True,
        timeout=900,
    )
    return venv / "bin"


@pytest.fixture(scope="module")
async def emulator(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(ca_path=tmp_path_factory.mktemp("emulator") / "ca.pem")) as running:
        yield running


@pytest.fixture
async def empty_database(databases: TestDatabases) -> AsyncIterator[str]:
    """A database with no schema at all: `chuong migrate` from the wheel must build it."""
    name = f"{databases.prefix}_wheel"
    admin = await databases._admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield name
    finally:
        await dispose_engine()
        await databases.drop(name)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment(database_url: str, emulator: Emulator) -> dict[str, str]:
    """Only what an operator would set: the CHUONG_* settings of this test run, no PYTHONPATH and a
    working directory outside the checkout, so nothing can be imported from the sources."""
    settings = {name: value for name, value in os.environ.items() if name.startswith("CHUONG_")}
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        **settings,
        "CHUONG_DATABASE_URL": database_url,
        **as_env(emulator.app_settings()),
    }


def _run(argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float) -> str:
    done = subprocess.run(  # noqa: S603 - the installed commands
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{argv[1:]} failed: {done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture
def served(
    installed: Path, empty_database: str, databases: TestDatabases, emulator: Emulator, tmp_path: Path
) -> Iterator[str]:
    env = _environment(databases.app_url(empty_database), emulator)
    out = _run(
        [str(installed / "chuong"), "migrate", "--database-url", databases.owner_url(empty_database)],
        env=env, cwd=tmp_path, timeout=180,
    )  # fmt: skip
    assert "latest migration" in out
    port = _free_port()
    server = subprocess.Popen(  # noqa: S603 - the installed command
        [str(installed / "chuong"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else "server exited"
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the installed API never became ready"
            time.sleep(0.3)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


async def test_the_installed_wheel_migrates_serves_and_delivers_a_push(
    installed: Path,
    served: str,
    empty_database: str,
    databases: TestDatabases,
    emulator: Emulator,
    redis: object,  # this test's Redis database, emptied
    tmp_path: Path,
) -> None:
    # Everything below runs from the wheel, not from this checkout.
    probe = [str(installed / "python"), "-c", "import cli, core; print(cli.__file__)"]
    where = _run(probe, env={}, cwd=tmp_path, timeout=30)
    assert str(installed.parent) in where and str(ROOT) not in where

    async with httpx.AsyncClient(base_url=served, timeout=30) as client:
        assert (await client.get("/healthz")).status_code == 200
        # Accounts and the approved release are written by this process into the same database.
        configure_engine(make_engine(databases.app_url(empty_database), pool_size=2, max_overflow=2))
        owner = create_async_engine(databases.owner_url(empty_database))
        try:
            async with owner.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO devices (id, app, platform, provider, token, locale) "
                        "VALUES (gen_random_uuid(), 'portal', 'android', 'fcm', :token, 'vi')"
                    ),
                    {"token": TOKEN},
                )
            headers = await central_sender(client)
            emulator.reset()
            notification_id = await broadcast(client, headers)

            env = _environment(databases.app_url(empty_database), emulator)
            worker = [str(installed / "chuong"), "worker", "--queue", "high", "--burst"]
            await asyncio.to_thread(_run, worker, env=env, cwd=tmp_path, timeout=180)

            async with owner.connect() as conn:
                statuses = (
                    (
                        await conn.execute(
                            text("SELECT status FROM deliveries WHERE notification_id = :id"),
                            {"id": notification_id},
                        )
                    )
                    .scalars()
                    .all()
                )
            assert statuses == ["sent"]
            assert [record.token for record in emulator.log.find(limit=10)] == [TOKEN]
        finally:
            await owner.dispose()
