"""The soak's faults (bench/soak.py), one at a time at seeded random intervals, each followed by
the wait for recovery: the API answers /readyz and every notification created before the fault
ended is finished. Each fault carries the duplicates it may cause (docs/delivery.md
"Guarantees"): what a worker had on the wire and not yet recorded when it died or lost its
database or Redis, what an outage of the provider connection cut off; a refusal (503, 429) or a
slow answer causes none."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import asyncpg

from bench.soak_stack import Stack
from core.config import Settings
from notifications.states import FINAL_STATUSES
from tests.notifications.test_resilience import PER_WORKER_BOUND
from tests.support.scratch_postgres import restart
from tests.support.scratch_redis import answers

# What one worker has on the wire per provider: the answers one dropped connection can lose.
IN_FLIGHT = sum(Settings.model_fields[name].default for name in ("fcm_max_in_flight", "apns_max_in_flight"))
KINDS = (
    "kill_worker",
    "redis_restart",
    "postgres_restart",
    "provider_outage",
    "quota_storm",
    "latency_spike",
    "dropped_connections",
)
RECOVERY_TIMEOUT = 600.0


@dataclass
class Fault:
    kind: str
    started: float  # wall clock
    ended: float = 0.0
    recovered: float | None = None
    aimed: bool = False  # a broadcast was under way when it started
    api_back: float | None = None  # when the API first answered /readyz after the fault ended
    detail: str = ""
    bound: int = 0  # duplicates this fault may cause

    @property
    def recovery_seconds(self) -> float | None:
        return None if self.recovered is None else self.recovered - self.ended


class Injector:
    def __init__(
        self,
        stack: Stack,
        *,
        seed: int,
        kinds: list[str],
        gap: tuple[float, float],
        args: object,
        aim_seconds: float = 90.0,
    ) -> None:
        self.stack = stack
        self.rng = random.Random(seed)
        self.kinds = kinds
        self.gap = gap
        self.outage = getattr(args, "outage_seconds", (30.0, 60.0))
        self.storm = getattr(args, "storm_seconds", (10.0, 20.0))
        self.latency_ms = float(getattr(args, "latency_ms", 40.0))
        self.aim_seconds = aim_seconds
        self.faults: list[Fault] = []

    def order(self) -> list[str]:
        """Every kind once per round, in a seeded random order."""
        kinds = list(self.kinds)
        self.rng.shuffle(kinds)
        return kinds

    async def run(self, until: float) -> None:
        """Faults until ``until`` (monotonic); none starts that could not end before it."""
        while True:
            for kind in self.order():
                await asyncio.sleep(self.rng.uniform(*self.gap))
                aimed = await self.aim(until - self.longest(kind))
                if time.monotonic() + self.longest(kind) > until:
                    return
                fault = Fault(kind, time.time(), aimed=aimed)
                self.faults.append(fault)
                await getattr(self, kind)(fault)
                fault.ended = time.time()
                print(f"fault {kind} {fault.detail}: ended, waiting for recovery", flush=True)
                await self.wait_recovered(fault)
                took = fault.recovery_seconds
                print(f"  recovered in {took:.1f} s" if took is not None else "  NOT recovered", flush=True)

    async def aim(self, latest: float) -> bool:
        """Wait (up to ``aim_seconds``, and not past ``latest``) for a broadcast with pushes on
        the wire, as the fault tests wait for pushes to go out: a fault between two broadcasts
        would test little. True if one was under way."""
        deadline = min(time.monotonic() + self.aim_seconds, latest)
        while time.monotonic() < deadline:
            if await broadcast_under_way(self.stack):
                return True
            await asyncio.sleep(0.2)
        return False

    def longest(self, kind: str) -> float:
        """The most seconds a fault of this kind lasts (recovery not counted)."""
        seconds = {"provider_outage": self.outage[1], "redis_restart": 10.0, "postgres_restart": 10.0}
        seconds |= {"quota_storm": self.storm[1], "latency_spike": self.storm[1], "dropped_connections": 10.0}
        return seconds.get(kind, 1.0)

    async def wait_recovered(self, fault: Fault) -> None:
        deadline = time.monotonic() + RECOVERY_TIMEOUT
        while time.monotonic() < deadline:
            if fault.api_back is None and await api_ready(self.stack.api_url):
                fault.api_back = time.time()
            if fault.api_back is not None and await unfinished_before(self.stack, fault.ended) == 0:
                fault.recovered = time.time()
                return
            await asyncio.sleep(0.5)

    # --- the faults -----------------------------------------------------------------------

    async def kill_worker(self, fault: Fault) -> None:
        index = self.rng.randrange(len(self.stack.senders))
        pid = self.stack.kill_sender(index)
        fault.detail, fault.bound = f"SIGKILL worker {index} (pid {pid}), restarted", PER_WORKER_BOUND

    async def redis_restart(self, fault: Fault) -> None:
        down = self.rng.uniform(3, 8)
        self.stack.redis.stop()
        await asyncio.sleep(down)
        self.stack.redis.start()  # empty: every job, lock and counter is gone
        await wait(lambda: answers(self.stack.redis.url), 30)
        fault.detail = f"down {down:.1f} s, back empty"
        fault.bound = len(self.stack.senders) * PER_WORKER_BOUND

    async def postgres_restart(self, fault: Fault) -> None:
        down = await asyncio.to_thread(restart, self.stack.cluster)
        fault.detail = f"immediate stop and start, down {down:.1f} s"
        fault.bound = len(self.stack.senders) * PER_WORKER_BOUND

    async def provider_outage(self, fault: Fault) -> None:
        seconds = self.rng.uniform(*self.outage)
        await self.provider({"outage": True})
        await asyncio.sleep(seconds)
        await self.provider({"outage": False})
        fault.detail = f"every request 503 for {seconds:.0f} s"

    async def quota_storm(self, fault: Fault) -> None:
        seconds = self.rng.uniform(*self.storm)
        await self.provider({"error_rate": 1.0, "error_kind": "quota", "retry_after_s": 8})
        await asyncio.sleep(seconds)
        await self.provider({"error_rate": 0.0})
        fault.detail = f"every request 429 (Retry-After 8 s) for {seconds:.0f} s"

    async def latency_spike(self, fault: Fault) -> None:
        seconds = self.rng.uniform(*self.storm)
        await self.provider({"latency_ms": 2000})
        await asyncio.sleep(seconds)
        await self.provider({"latency_ms": self.latency_ms})
        fault.detail = f"2,000 ms per answer for {seconds:.0f} s"

    async def dropped_connections(self, fault: Fault) -> None:
        steps = ("/drop-connections", "/reset-connections", "/drop-connections")
        async with aiohttp.ClientSession() as http:
            for path in steps:
                async with http.post(self.stack.control_url + path) as response:
                    response.raise_for_status()
                await asyncio.sleep(3)
        fault.detail = "GOAWAY, TCP reset, GOAWAY on every provider connection, 3 s apart"
        fault.bound = len(steps) * len(self.stack.senders) * IN_FLIGHT

    async def provider(self, changes: dict[str, object]) -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.put(f"{self.stack.control_url}/faults", json=changes) as response,
        ):
            response.raise_for_status()


async def wait(check: Callable[[], Awaitable[bool]], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        await asyncio.sleep(0.2)


async def api_ready(api_url: str) -> bool:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.get(f"{api_url}/readyz") as response,
        ):
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def broadcast_under_way(stack: Stack) -> bool:
    """A notification to more than 1,000 devices with a fifth to three fifths of them done."""
    try:
        conn = await asyncpg.connect(stack.owner_dsn, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError):
        return False
    try:
        found: bool = await conn.fetchval(
            "SELECT EXISTS (SELECT FROM notifications WHERE status = 'sending' AND targeted > 1000 "
            "AND sent + invalid + failed BETWEEN targeted / 5 AND targeted * 3 / 5)"
        )
        return found
    except (OSError, TimeoutError, asyncpg.PostgresError):
        return False
    finally:
        await conn.close()


async def unfinished_before(stack: Stack, wall: float) -> int | None:
    """Notifications created before ``wall`` and not finished; None while the database is away."""
    try:
        conn = await asyncpg.connect(stack.owner_dsn, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError):
        return None
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM notifications WHERE created_at < to_timestamp($1) AND NOT status = ANY($2)",
            wall,
            list(FINAL_STATUSES),
        )
        return count
    except (OSError, TimeoutError, asyncpg.PostgresError):
        return None
    finally:
        await conn.close()
