"""The soak's mixed load (bench/soak.py), through the real API over HTTP: breaking news through the
four-eyes workflow (a reporter drafts and submits, a publisher signs in with a fresh TOTP and
approves), targeted pushes to named devices, inbox reads (unread count and the first page, with a
device credential), sign-ins (password + TOTP) and device registrations and refreshes.

Arrivals are Poisson at the configured rates (an open loop: a slow server does not slow the
load down), seeded; every request's latency and outcome is kept per operation."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.news import draft_body
from bench.soak_stack import Account

TIMEOUT = aiohttp.ClientTimeout(total=20)
# Open-loop arrivals pile up while the service is down; past this many in flight the generator
# skips an arrival (counted) rather than queueing thousands of requests behind an outage.
MAX_IN_FLIGHT = 64
# Refresh a session token before its 10 minutes (access_token_ttl_seconds) end.
SESSION_SECONDS = 300.0


@dataclass
class Sample:
    at: float  # wall-clock start
    seconds: float
    ok: bool
    status: int  # 0: no answer (refused, reset, timed out)


@dataclass
class Ops:
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    skipped: int = 0

    def add(self, name: str, sample: Sample) -> None:
        self.samples.setdefault(name, []).append(sample)


@dataclass
class Device:
    id: str
    token: str
    credential: str
    platform: str


class Load:
    def __init__(
        self, api_url: str, accounts: dict[str, list[Account]], seeded: list[str], seed: int
    ) -> None:
        self.api_url = api_url
        self.accounts = accounts
        self.seeded = seeded  # device ids inserted at set-up (no credential: targets only)
        self.rng = random.Random(seed)
        self.ops = Ops()
        self.devices: list[Device] = []
        self.broadcasts: list[str] = []  # notification ids the approvals answered
        self.pushes: list[str] = []
        self.http: aiohttp.ClientSession | None = None
        self.in_flight = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.news_index = 0

    # --- one request ------------------------------------------------------------------------

    async def call(
        self, op: str, method: str, path: str, *, expect: int, json: Any = None, headers: Any = None
    ) -> Any:
        """The answer's JSON if it has the expected status, else None (recorded either way)."""
        assert self.http is not None
        started, wall = time.perf_counter(), time.time()
        status, body = 0, None
        try:
            async with self.http.request(method, self.api_url + path, json=json, headers=headers) as response:
                status = response.status
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            pass
        ok = status == expect
        self.ops.add(op, Sample(wall, time.perf_counter() - started, ok, status))
        return body if ok else None

    async def sign_in(self, account: Account, op: str = "sign-in") -> bool:
        code = account.code()
        if code is None:
            return False
        body = {"username": account.username, "password": account.password, "totp_code": code}
        answer = await self.call(op, "POST", "/v1/auth/login", expect=200, json=body)
        if answer is None:
            return False
        account.headers = {"Authorization": f"Bearer {answer['access_token']}"}
        account.signed_in_at = time.monotonic()
        return True

    async def session_of(self, account: Account, *, fresh: float = SESSION_SECONDS) -> dict[str, str] | None:
        """The account's headers, signing in again when its session is older than ``fresh``
        seconds (waiting up to one TOTP step for an unused code)."""
        async with account.lock:
            for _ in range(32):
                if account.headers and time.monotonic() - account.signed_in_at < fresh:
                    return account.headers
                if await self.sign_in(account, op="sign-in (desk)"):
                    return account.headers
                await asyncio.sleep(1)
        return None

    # --- the operations -----------------------------------------------------------------------

    async def register(self) -> None:
        if self.devices and self.rng.random() < 0.4:
            device = self.rng.choice(self.devices)  # an app start of a known device
            body = {"app": "portal", "platform": device.platform, "token": device.token, "locale": "vi"}
            headers = {"Authorization": f"Bearer {device.credential}"}
            await self.call("register refresh", "POST", "/v1/devices", expect=200, json=body, headers=headers)
            return
        android = self.rng.random() < 0.7
        token = f"soak-{secrets.token_hex(12)}" if android else secrets.token_hex(32)
        platform = "android" if android else "ios"
        body = {
            "app": "portal",
            "platform": platform,
            "token": token,
            "locale": self.rng.choice(["vi", "en"]),
        }
        answer = await self.call("register new", "POST", "/v1/devices", expect=201, json=body)
        if answer is not None:
            self.devices.append(Device(answer["id"], token, answer["device_credential"], platform))

    async def read_inbox(self) -> None:
        if not self.devices:
            return
        headers = {"Authorization": f"Bearer {self.rng.choice(self.devices).credential}"}
        await self.call("inbox unread-count", "GET", "/v1/inbox/unread-count", expect=200, headers=headers)
        await self.call("inbox first page", "GET", "/v1/inbox?limit=20", expect=200, headers=headers)

    async def sign_in_someone(self) -> None:
        step = int(time.time() // 30)
        idle = [account for account in self.accounts["pool"] if account.last_step < step]
        if idle:
            await self.sign_in(self.rng.choice(idle))

    async def targeted_push(self) -> None:
        sender = self.accounts["sender"][0]
        headers = await self.session_of(sender)
        if headers is None:
            return
        pool = [device.id for device in self.devices] + self.seeded
        devices = self.rng.sample(pool, min(len(pool), self.rng.randint(1, 20)))
        body = {
            "app": "portal",
            "kind": "breaking_news",
            "priority": "high",
            "title": {"vi": "Tin", "en": "News"},
            "body": {"vi": "Nội dung", "en": "Body"},
            "audience": {"devices": devices},
        }
        answer = await self.call(
            "targeted push", "POST", "/v1/notifications", expect=202, json=body, headers=headers
        )
        if answer is not None:
            self.pushes.append(str(answer["id"]))

    async def breaking_news(self) -> None:
        """Draft and submit as the reporter, approve as the publisher with a TOTP verified in the
        last minutes (the step-up the approval requires)."""
        reporter = await self.session_of(self.accounts["reporter"][0])
        if reporter is None:
            return
        self.news_index += 1
        item = await self.call(
            "news draft", "POST", "/v1/news", expect=201, json=draft_body(self.news_index), headers=reporter
        )
        if item is None:
            return
        if (
            await self.call(
                "news submit", "POST", f"/v1/news/{item['id']}/submit", expect=200, json={}, headers=reporter
            )
            is None
        ):
            return
        publisher = await self.session_of(self.accounts["publisher"][0], fresh=120)
        if publisher is None:
            return
        approved = await self.call(
            "news approve", "POST", f"/v1/news/{item['id']}/approve", expect=200, json={}, headers=publisher
        )
        if approved is not None:
            self.broadcasts.append(str(approved["notification_id"]))

    # --- arrivals -----------------------------------------------------------------------------

    def launch(self, operation: Callable[[], Awaitable[None]]) -> None:
        if self.in_flight >= MAX_IN_FLIGHT:
            self.ops.skipped += 1
            return
        self.in_flight += 1

        async def run() -> None:
            try:
                await operation()
            finally:
                self.in_flight -= 1

        task = asyncio.create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def arrivals(self, rate: float, operation: Callable[[], Awaitable[None]], until: float) -> None:
        if rate <= 0:
            return
        rng = random.Random(self.rng.random())
        while True:
            await asyncio.sleep(rng.expovariate(rate))
            if time.monotonic() >= until:
                return
            self.launch(operation)

    async def run(self, rates: dict[str, float], until: float) -> None:
        """Every generator until ``until`` (monotonic), then the requests still under way."""
        operations = {
            "registrations": self.register,
            "inbox_reads": self.read_inbox,
            "sign_ins": self.sign_in_someone,
            "targeted_pushes": self.targeted_push,
            "broadcasts": self.breaking_news,
        }
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            self.http = http
            await asyncio.gather(*(self.arrivals(rates[name], op, until) for name, op in operations.items()))
            while self.tasks:
                await asyncio.gather(*list(self.tasks), return_exceptions=True)
