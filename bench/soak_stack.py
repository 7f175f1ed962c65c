"""The soak's own service (bench/soak.py): a scratch PostgreSQL cluster and a scratch Redis on
spare ports (the faults restart them; the machine's shared ones are never touched), the provider
emulator keeping every message, `chuong serve` and `chuong worker` processes, and the accounts
the load signs in with."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench import support
from tests.support.live_stack import Process, free_port, spawn
from tests.support.scratch_postgres import ScratchCluster
from tests.support.scratch_redis import ScratchRedis

DATABASE = "chuong_soak"
# Every message the soak sends stays in the emulator's record, payload included: the payload
# names the notification, and a duplicate is a second accepted request for one (notification,
# token) pair.
RECORD_LIMIT = 5_000_000


@dataclass
class Account:
    username: str
    password: str
    totp_secret: str
    role: str
    last_step: int = 0  # the TOTP step last used: a code is good once (auth/totp.py)
    headers: dict[str, str] = field(default_factory=dict)
    signed_in_at: float = 0.0
    # The desk's accounts sign in again for whichever operation first finds their session old:
    # one at a time, so the others reuse the new session instead of each waiting for a code.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def code(self) -> str | None:
        """A code for the current step, or None if this step was used already."""
        import datetime as dt

        from auth.totp import code_for

        step = int(time.time() // 30)
        if step <= self.last_step:
            return None
        self.last_step = step
        return code_for(self.totp_secret, at=dt.datetime.now(dt.UTC))


@dataclass
class Stack:
    cluster: ScratchCluster
    redis: ScratchRedis
    emulator: support.EmulatorProcess
    workdir: Path
    env: dict[str, str]
    api_url: str = ""
    api: Process | None = None
    senders: list[Process] = field(default_factory=list)  # `chuong worker --queue high`
    others: list[Process] = field(default_factory=list)  # the bulk worker
    restarts: int = 0

    @property
    def control_url(self) -> str:
        return str(self.emulator.addresses["control_url"])

    @property
    def owner_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.cluster.port}/{DATABASE}"

    def start_sender(self, index: int) -> Process:
        self.restarts += 1
        argv = [sys.executable, "-m", "cli", "worker", "--queue", "high"]
        return spawn(f"worker{index}-{self.restarts}", argv, self.env, self.workdir)

    def start_processes(self, senders: int) -> None:
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        self.api = spawn(
            "api", [sys.executable, "-m", "cli", "serve", "--port", str(port)], self.env, self.workdir
        )
        self.senders = [self.start_sender(index) for index in range(senders)]
        bulk = [sys.executable, "-m", "cli", "worker", "--queue", "bulk"]
        self.others = [spawn("bulk-worker", bulk, self.env, self.workdir)]

    def kill_sender(self, index: int) -> int:
        """SIGKILL one sending worker and start its replacement, as a supervisor would."""
        victim = self.senders[index]
        victim.popen.send_signal(signal.SIGKILL)
        victim.popen.wait(timeout=10)
        self.senders[index] = self.start_sender(index)
        return victim.popen.pid

    def dead(self) -> list[str]:
        """Processes that exited on their own (a fault must never take one down)."""
        processes = [self.api, *self.senders, *self.others]
        return [p.name for p in processes if p is not None and p.popen.poll() is not None]

    def stop(self) -> None:
        for process in [*self.senders, *self.others, self.api]:
            if process is not None:
                process.stop()
        support.stop([self.emulator.process])
        self.redis.stop()


def environment(
    cluster: ScratchCluster, redis_url: str, emulator: support.EmulatorProcess, args: Any
) -> dict[str, str]:
    from cryptography.fernet import Fernet

    return (
        os.environ
        | emulator.env()
        | {
            "CHUONG_ENVIRONMENT": "bench",
            "CHUONG_DATABASE_URL": f"postgresql+asyncpg://{support.APP_ROLE}@127.0.0.1:{cluster.port}/{DATABASE}",
            "CHUONG_REDIS_URL": redis_url,
            "CHUONG_FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "CHUONG_AUDIT_HMAC_KEY": secrets.token_urlsafe(32),
            "CHUONG_JWT_KEYS": json.dumps({"soak": secrets.token_urlsafe(32)}),
            "CHUONG_JWT_ACTIVE_KID": "soak",
            "CHUONG_TOKEN_PEPPER": secrets.token_urlsafe(32),
            # One load generator on 127.0.0.1 stands for many phones and editors: the limiters run
            # (their Redis round trips are part of every request) but never refuse.
            "CHUONG_RATE_LIMIT_PER_IP": "100000000/minute",
            "CHUONG_RATE_LIMIT_PER_CLIENT": "100000000/minute",
            "CHUONG_RATE_LIMIT_PER_ACCOUNT": "100000000/minute",
            "CHUONG_RATE_LIMIT_LOGIN_PER_IP": "100000000/minute",
            "CHUONG_DEVICE_REGISTRATION_LIMIT_PER_NETWORK": "100000000/minute",
            "CHUONG_DEVICE_REGISTRATION_LIMIT_GLOBAL": "100000000/minute",
            "CHUONG_DELIVERY_LEASE_SECONDS": str(args.lease_seconds),
            "CHUONG_RECONCILE_GRACE_SECONDS": str(args.reconcile_grace_seconds),
            "CHUONG_RECONCILE_EVERY_SECONDS": str(args.reconcile_every_seconds),
            "CHUONG_LOG_LEVEL": "WARNING",
            "CHUONG_LOG_JSON": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )


def start_emulator(workdir: Path) -> support.EmulatorProcess:
    return support.EmulatorProcess.start(
        workdir / "emulator-ca.pem", record=True, max_records=RECORD_LIMIT, max_payloads=RECORD_LIMIT
    )


async def seed(stack: Stack, *, devices: int, unregistered: int) -> list[str]:
    """A migrated database with ``devices`` live portal devices (70 % FCM) and ``unregistered``
    whose token the provider no longer knows (their deliveries end invalid); returns the ids."""
    conn = await support.fresh_database(
        pg=f"127.0.0.1:{stack.cluster.port}", superuser="postgres", name=DATABASE, redis_url=stack.redis.url
    )
    try:
        await support.insert_devices(conn, devices=devices, fcm_share=0.7)
        await conn.execute(
            "INSERT INTO devices (id, app, platform, provider, token, locale) "
            "SELECT gen_random_uuid(), 'portal', 'android', 'fcm', 'unregistered-soak-' || i, 'vi' "
            "FROM generate_series(1, $1::int) AS i",
            unregistered,
        )
        return [str(row["id"]) for row in await conn.fetch("SELECT id FROM devices")]
    finally:
        await conn.close()


async def make_accounts(*, sign_in_pool: int) -> dict[str, list[Account]]:
    """A root unit with a reporter, a publisher (the four eyes of a breaking-news release), a
    system admin (targeted pushes) and ``sign_in_pool`` reporters the sign-in load cycles
    through, each with a confirmed TOTP. Through the models, in this process (its environment
    names the soak's database)."""
    from auth.models import TotpCredential, User
    from auth.passwords import hash_password
    from auth.roles import Role
    from auth.totp import new_secret
    from auth.units import create_root_unit
    from core.clock import utcnow
    from core.crypto import encrypt_text
    from core.db import dispose_engine, transaction

    password = secrets.token_urlsafe(18)
    hashed = hash_password(password)
    roles = {"reporter": [Role.REPORTER], "publisher": [Role.PUBLISHER], "sender": [Role.SYSTEM_ADMIN]}
    roles["pool"] = [Role.REPORTER] * sign_in_pool
    accounts: dict[str, list[Account]] = {}
    async with transaction() as session:
        unit = await create_root_unit(session, code="SOAK", name="Soak", kind="central")
        for group, members in roles.items():
            for index, role in enumerate(members):
                secret, username = new_secret(), f"soak{group}{index}"
                user = User(
                    id=uuid.uuid4(),
                    username=username,
                    full_name=f"Soak {group} {index}",
                    unit_id=unit.id,
                    role=role.value,
                    password_hash=hashed,
                    is_active=True,
                    must_change_password=False,
                )
                session.add(user)
                await session.flush()
                session.add(
                    TotpCredential(user_id=user.id, secret_enc=encrypt_text(secret), confirmed_at=utcnow())
                )
                accounts.setdefault(group, []).append(Account(username, password, secret, role.value))
    # The faults restart PostgreSQL: this process keeps no pooled connection across them.
    await dispose_engine()
    return accounts


async def wait_until_up(stack: Stack, *, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as http:
        while True:
            if dead := stack.dead():
                raise RuntimeError(f"{dead} exited at start:\n{stack.api.log()[-3000:] if stack.api else ''}")
            try:
                async with http.get(f"{stack.api_url}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the API did not start")
            await asyncio.sleep(0.3)


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="chuong-soak-"))
