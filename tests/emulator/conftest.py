"""One in-process emulator for the whole test session, reset before every test."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import firebase_admin
import pytest
from aioapns import APNs
from aioapns.logging import logger as aioapns_logger
from firebase_admin._retry import HttpxRetry

from emulator import Emulator, EmulatorConfig
from emulator.clients import apns_client_for_emulator, close_firebase_app, firebase_app_for_emulator
from emulator.server import READY_PREFIX

# aioapns logs every failed notification at ERROR; the fault tests provoke hundreds.
aioapns_logger.setLevel(logging.CRITICAL)


@pytest.fixture(scope="session")
async def emulator(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Emulator]:
    config = EmulatorConfig(ca_path=tmp_path_factory.mktemp("emulator") / "ca.pem", seed=1234)
    async with Emulator(config) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_emulator(emulator: Emulator) -> None:
    emulator.reset()


@pytest.fixture
async def firebase_app(emulator: Emulator) -> AsyncIterator[firebase_admin.App]:
    """Retries off so a fault shows up as the library's exception at once."""
    app = firebase_app_for_emulator(
        fcm_url=emulator.fcm_url, ca_path=emulator.ca_path, retry_config=HttpxRetry(max_retries=0)
    )
    yield app
    await close_firebase_app(app)


@pytest.fixture
async def apns_client(emulator: Emulator) -> AsyncIterator[APNs]:
    client = apns_client_for_emulator(
        host=emulator.client_host, port=emulator.apns_port, ca_path=emulator.ca_path
    )
    yield client
    client.pool.close()


@pytest.fixture
async def control(emulator: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=emulator.control_url) as session:
        yield session


@dataclass(frozen=True)
class EmulatorProcess:
    """`python -m emulator` in its own process, as the app and benchmarks run it."""

    process: asyncio.subprocess.Process
    fcm_url: str
    apns_host: str
    apns_port: int
    control_url: str
    token_uri: str
    ca_path: Path


@pytest.fixture(scope="session")
async def emulator_process(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmulatorProcess]:
    ca_path = tmp_path_factory.mktemp("emulator-process") / "ca.pem"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "emulator",
        "--fcm-port=0",
        "--apns-port=0",
        "--control-port=0",
        f"--ca-path={ca_path}",
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), timeout=60)).decode()
    assert line.startswith(READY_PREFIX), line
    addresses = json.loads(line[len(READY_PREFIX) :])
    yield EmulatorProcess(
        process=process,
        fcm_url=addresses["fcm_url"],
        apns_host=addresses["apns_host"],
        apns_port=addresses["apns_port"],
        control_url=addresses["control_url"],
        token_uri=addresses["token_uri"],
        ca_path=Path(addresses["ca_path"]),
    )
    if process.returncode is None:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=30)
