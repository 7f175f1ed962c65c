"""Pieces of the delivery benchmark that are not about delivery: processes, /proc readings, the
benchmark database and its devices."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from emulator.app_settings import app_settings, as_env

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
APP_ROLE = "chuong_app"
# The devices' locales, cycled by device number: mostly Vietnamese, every portal language present
# (devices/locales.py). The raw baseline uses the same cycle (bench/baseline.py).
LOCALES = ("vi", "vi", "vi", "en", "zh", "fr", "es", "ru")


# --- /proc readings (Linux): CPU time counts every thread of the process -------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (10 ms resolution; phases last many seconds)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process ever had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def postgres_cpu_seconds() -> float:
    """All PostgreSQL processes on the machine (the benchmark's database is the only busy one)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                total += cpu_seconds(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # a backend that just ended
    return total


# --- child processes ---------------------------------------------------------------------


@dataclass
class EmulatorProcess:
    process: subprocess.Popen[bytes]
    addresses: dict[str, object]

    @classmethod
    def start(
        cls,
        ca_path: Path,
        *,
        record: bool = False,
        max_payloads: int = 100_000,
        max_records: int | None = None,
    ) -> EmulatorProcess:
        # No per-message record by default: a million records would cost the emulator memory and
        # CPU. With one, only the newest ``max_payloads`` keep their payload (and ``max_records``
        # bounds the records themselves; the soak keeps every one).
        argv = [sys.executable, "-m", "emulator", "--fcm-port=0", "--apns-port=0", "--control-port=0"]
        argv += [f"--ca-path={ca_path}"]
        argv += [f"--max-payloads={max_payloads}"] if record else ["--no-record"]
        if record and max_records is not None:
            argv += [f"--max-records={max_records}"]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=ROOT)  # noqa: S603
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        prefix = "EMULATOR READY "
        if not line.startswith(prefix):
            process.kill()
            raise RuntimeError(f"emulator did not start: {line!r}")
        return cls(process, json.loads(line[len(prefix) :]))

    @property
    def pid(self) -> int:
        return self.process.pid

    def env(self) -> dict[str, str]:
        # The emulator's endpoints, service account and .p8 key (emulator/app_settings.py).
        return as_env(app_settings(self.addresses))


async def set_provider_latency(control_url: str, latency_ms: float) -> None:
    """Every FCM and APNs answer of the emulator waits this long (its `latency_ms` fault), as a
    real provider's round trip does; loopback alone hides what latency does to a worker."""
    import aiohttp

    async with (
        aiohttp.ClientSession() as http,
        http.put(f"{control_url}/faults", json={"latency_ms": latency_ms}) as response,
    ):
        settings = await response.json()
        if response.status != 200 or settings.get("latency_ms") != latency_ms:
            raise RuntimeError(f"the emulator refused latency_ms={latency_ms}: {response.status} {settings}")


def start_workers(count: int, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    """`chuong worker --queue high`, exactly as deployed (high-priority pushes use that queue)."""
    argv = [sys.executable, "-m", "cli", "worker", "--queue", "high"]
    return [subprocess.Popen(argv, cwd=ROOT, env=env) for _ in range(count)]  # noqa: S603


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


# --- the benchmark database -------------------------------------------------------------


async def recreate_database(*, host: str, port: int, superuser: str, name: str) -> None:
    conn = await asyncpg.connect(host=host, port=port, user=superuser, database="postgres")
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", APP_ROLE):
            await conn.execute(f"CREATE ROLE {APP_ROLE} LOGIN")
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def migrate(owner_url: str) -> None:
    from alembic import command

    from cli.migration_config import alembic_config

    command.upgrade(alembic_config(owner_url), "head")


async def fresh_database(*, pg: str, superuser: str, name: str, redis_url: str) -> asyncpg.Connection:
    """A freshly created and migrated benchmark database with an empty Redis; returns an owner
    connection to it (the caller closes it)."""
    host, port = pg.split(":")
    await recreate_database(host=host, port=int(port), superuser=superuser, name=name)
    await asyncio.to_thread(migrate, f"postgresql+asyncpg://{superuser}@{pg}/{name}")
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    await redis.aclose()
    return await asyncpg.connect(host=host, port=int(port), user=superuser, database=name)


def fcm_token(index: int) -> str:
    # Real FCM registration tokens are ~160 characters; the size matters for the wire and the DB.
    return f"bench{index:010d}:APA91b" + "x" * 140


def apns_token(index: int) -> str:
    return f"{index:064x}"  # 32 bytes, hex, like a real APNs device token


async def insert_devices(conn: asyncpg.Connection, *, devices: int, fcm_share: float) -> dict[str, int]:
    """Live anonymous portal devices, 70 % FCM / 30 % APNs by default, six locales (mostly
    Vietnamese). Generated server-side, in chunks."""
    fcm_every = round(fcm_share * 100)
    chunk = 200_000
    for start in range(0, devices, chunk):
        await conn.execute(
            """
            INSERT INTO devices (id, app, platform, provider, apns_environment, token, locale)
            SELECT gen_random_uuid(), 'portal',
                   CASE WHEN fcm THEN 'android' ELSE 'ios' END,
                   CASE WHEN fcm THEN 'fcm' ELSE 'apns' END,
                   CASE WHEN fcm THEN NULL ELSE 'production' END,
                   CASE WHEN fcm THEN 'bench' || lpad(i::text, 10, '0') || ':APA91b' || repeat('x', 140)
                        ELSE lpad(to_hex(i), 64, '0') END,
                   ($4::text[])[1 + i % cardinality($4::text[])]
            FROM (SELECT i, (i % 100) < $3 AS fcm FROM generate_series($1::int, $2::int) AS i) AS s
            """,
            start,
            min(start + chunk, devices) - 1,
            fcm_every,
            list(LOCALES),
        )
    await conn.execute("VACUUM ANALYZE devices")
    rows = await conn.fetch("SELECT provider, count(*) AS n FROM devices GROUP BY provider")
    return {row["provider"]: row["n"] for row in rows}


async def keep_live_only(conn: asyncpg.Connection, provider: str | None) -> None:
    """Retire the other provider's devices for one phase, so a broadcast (audience "all") reaches
    one provider and its worker CPU can be attributed. None: every device live again."""
    await conn.execute(
        "UPDATE devices SET invalidated_at = CASE WHEN $1::text IS NULL OR provider = $1 THEN NULL "
        "ELSE now() END, invalid_reason = CASE WHEN $1::text IS NULL OR provider = $1 THEN NULL "
        "ELSE 'bench_phase' END",
        provider,
    )
    await conn.execute("VACUUM ANALYZE devices")


async def wait_until_completed(
    conn: asyncpg.Connection, notification_id: str, *, timeout_seconds: float
) -> dict[str, int]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds
    while True:
        row = await conn.fetchrow(
            "SELECT status, targeted, sent, invalid, failed FROM notifications WHERE id = $1::uuid",
            notification_id,
        )
        assert row is not None
        if row["status"] in ("completed", "expired", "cancelled"):
            return dict(row)
        if loop.time() > deadline:
            raise TimeoutError(f"notification {notification_id} still {row['status']}: {dict(row)}")
        await asyncio.sleep(0.1)
