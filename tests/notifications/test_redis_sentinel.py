"""Redis behind Sentinel (issue 18, failover): with CHUONG_REDIS_SENTINELS the API's clients and a
real worker find the master through the Sentinels, a push goes out, Sentinel fails the master
over to its replica, and the next push goes out through the new master, with nothing configured
again. Scratch servers on free ports: the machine's shared Redis is never touched."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from core.config import get_settings
from core.redis import close_redis, configure_redis, get_redis, new_redis_client
from tests.notifications.helpers import central_sender, notification_body
from tests.notifications.test_resilience import counts, insert_devices, start_worker, stop, wait_for
from tests.support.scratch_postgres import free_port
from workers.queue import close_pool, get_pool

MASTER = "chuong"


@dataclass(frozen=True)
class SentinelSet:
    primary: int
    replica: int
    sentinel: int


def _redis_server(directory: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603
        ["redis-server", *args, "--dir", str(directory)],  # noqa: S607
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _answers(port: int, *command: str) -> object:
    client = Redis(port=port, decode_responses=True, socket_connect_timeout=0.5)
    try:
        return await client.execute_command(*command)
    finally:
        await client.aclose()


async def _master_port(sentinel: int) -> int:
    address = await _answers(sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
    assert isinstance(address, list | tuple), address
    return int(address[1])


@pytest.fixture
def sentinel_set() -> Iterator[SentinelSet]:
    directory = Path(tempfile.mkdtemp(prefix="chuong-sentinel-"))
    ports = SentinelSet(primary=free_port(), replica=free_port(), sentinel=free_port())
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    conf = directory / "sentinel.conf"  # Sentinel rewrites its own file: it must be writable
    conf.write_text(
        f"port {ports.sentinel}\nbind 127.0.0.1\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {ports.primary} 1\n"
        f"sentinel down-after-milliseconds {MASTER} 1000\n"
        f"sentinel failover-timeout {MASTER} 5000\n",
        encoding="utf-8",
    )
    processes = [
        _redis_server(directory, "--port", str(ports.primary), *common),
        _redis_server(
            directory, "--port", str(ports.replica), "--replicaof", "127.0.0.1", str(ports.primary), *common
        ),
        subprocess.Popen(  # noqa: S603
            ["redis-server", str(conf), "--sentinel"],  # noqa: S607
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def through_sentinel(
    sentinel_set: SentinelSet, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[dict[str, str]]:
    """The service's settings pointed at the Sentinel, and the environment a worker gets."""

    async def replica_known() -> bool:
        with contextlib.suppress(Exception):
            replicas = await _answers(sentinel_set.sentinel, "SENTINEL", "REPLICAS", MASTER)
            return bool(replicas)
        return False

    await wait_for(replica_known, timeout=30, what="the Sentinel to discover the replica")
    # The URL's host and port lead nowhere on purpose: only the Sentinel may be asked.
    env = {
        "CHUONG_REDIS_URL": "redis://127.0.0.1:1/3",
        "CHUONG_REDIS_SENTINELS": f"127.0.0.1:{sentinel_set.sentinel}",
        "CHUONG_REDIS_SENTINEL_MASTER": MASTER,
    }
    settings = get_settings()
    monkeypatch.setattr(settings, "redis_url", env["CHUONG_REDIS_URL"])
    monkeypatch.setattr(settings, "redis_sentinels", [env["CHUONG_REDIS_SENTINELS"]])
    monkeypatch.setattr(settings, "redis_sentinel_master", MASTER)
    await close_pool()
    await close_redis()
    configure_redis(None)
    yield env
    await close_pool()
    await close_redis()


async def _push(client, sender: dict[str, str], owner_engine, emulator, reader: str) -> str:
    response = await client.post(
        "/v1/notifications", json=notification_body(audience={"devices": [reader]}), headers=sender
    )
    assert response.status_code == 202, response.text
    notification_id = str(response.json()["id"])

    async def sent() -> bool:
        return (await counts(owner_engine, notification_id)).get("sent", 0) == 1

    await wait_for(sent, timeout=60, what="the push to go out through the Sentinel's master")
    return notification_id


@pytest.mark.slow
async def test_the_service_follows_a_sentinel_failover(
    client,
    database_url,
    owner_engine,
    emulated_settings,
    emulator,
    sentinel_set,
    through_sentinel,
    monkeypatch,
):
    sender = await central_sender(client)
    await insert_devices(owner_engine, 1)
    async with owner_engine.connect() as conn:
        reader = str((await conn.execute(text("SELECT id FROM devices LIMIT 1"))).scalar_one())

    for name, value in through_sentinel.items():
        monkeypatch.setenv(name, value)
    worker = start_worker(database_url, emulator)
    try:
        await _push(client, sender, owner_engine, emulator, reader)
        assert await get_redis().ping()
        assert await _master_port(sentinel_set.sentinel) == sentinel_set.primary

        await _answers(sentinel_set.sentinel, "SENTINEL", "FAILOVER", MASTER)
        started = time.monotonic()

        async def promoted() -> bool:
            with contextlib.suppress(Exception):
                return await _master_port(sentinel_set.sentinel) == sentinel_set.replica
            return False

        await wait_for(promoted, timeout=30, what="Sentinel to promote the replica")
        await _push(client, sender, owner_engine, emulator, reader)
        recovered = time.monotonic() - started
        # The enqueue went to the new master: arq's pool asked the Sentinel again.
        pool = await get_pool()
        assert (await pool.connection_pool.get_master_address())[1] == sentinel_set.replica  # type: ignore[attr-defined]
        print(f"\nsentinel failover: the next push went out {recovered:.1f} s after the failover began")
    finally:
        stop(worker)


def test_sentinel_settings_are_checked(monkeypatch: pytest.MonkeyPatch):
    from core.config import Settings

    monkeypatch.setenv("CHUONG_REDIS_SENTINELS", "10.0.0.5:26379, [fd00::7]:26379")
    assert Settings().sentinel_addresses() == [("10.0.0.5", 26379), ("fd00::7", 26379)]
    monkeypatch.setenv("CHUONG_REDIS_SENTINELS", "10.0.0.5")
    with pytest.raises(ValueError, match="not host:port"):
        Settings()
    monkeypatch.setenv("CHUONG_REDIS_SENTINELS", "10.0.0.5:26379")
    monkeypatch.setenv("CHUONG_REDIS_URL", "rediss://cache.example:6380/0")
    with pytest.raises(ValueError, match="not supported"):
        Settings()


def test_a_sentinel_client_is_a_client_of_the_master(monkeypatch: pytest.MonkeyPatch):
    settings = get_settings()
    monkeypatch.setattr(settings, "redis_sentinels", ["127.0.0.1:26379"])
    monkeypatch.setattr(settings, "redis_url", "redis://:secret@ignored:1/4")
    client = new_redis_client(decode_responses=True)
    pool = client.connection_pool
    assert type(pool).__name__ == "SentinelConnectionPool"
    assert pool.connection_kwargs["db"] == 4 and pool.connection_kwargs["password"] == "secret"
