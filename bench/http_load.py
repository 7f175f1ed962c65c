"""Open-loop HTTP load for bench/inbox_http.py: requests at a fixed arrival rate, latency measured
from the moment each request was *due* (so queueing counts), and the capacity search built on it.

The client is a small asyncio program (uvloop, raw HTTP/1.1 keep-alive) in its own process, so
its CPU is measured apart from the server's. Each request is a random reader's.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.inbox import reader_id

# A seeded reader's locale (bench/inbox_http.py seeds devices with the same cycle).
LOCALES = ("vi", "vi", "vi", "en", "zh", "fr", "es", "ru")


def credential(index: int) -> str:
    # chd_<device id hex>_<secret>; the secret is derived from the index so the load generator
    # can build any reader's credential without a list of a million of them.
    return f"chd_{reader_id(index).hex}_b{index}"


def seeded_token(index: int) -> str:
    return f"bench-inbox-{index}"


@dataclass(frozen=True)
class Scenario:
    name: str
    server: str  # "api" or "minimal" (bench/minimal_app.py)
    method: str
    path: str
    status: int  # the answer every request should get


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("minimal", "minimal", "GET", "/minimal", 200),
        Scenario("unread-count", "api", "GET", "/v1/inbox/unread-count", 200),
        Scenario("first page", "api", "GET", "/v1/inbox?limit=20", 200),
        # An app started for the first time: no credential, a token nobody holds → a new
        # anonymous device and its credential (201).
        Scenario("register new", "api", "POST", "/v1/devices", 201),
        # An app start of a known device: its credential and its own token → the same device,
        # refreshed (200).
        Scenario("register refresh", "api", "POST", "/v1/devices", 200),
        # The same, from a device that started the app less than an hour ago: the readers are
        # drawn from the first AGAIN_READERS only, so after its first request (which writes
        # last_seen_at: the seeded devices were last seen 90 days ago) each one is such a device.
        Scenario("register again", "api", "POST", "/v1/devices", 200),
    )
}
AGAIN_READERS = 200


def request_for(scenario: Scenario, readers: int) -> bytes:
    index = random.randrange(min(readers, AGAIN_READERS) if scenario.name == "register again" else readers)
    headers = f"{scenario.method} {scenario.path} HTTP/1.1\r\nHost: bench\r\n"
    body = b""
    if scenario.name == "register new":
        fields: dict[str, object] = {"token": f"bench-new-{secrets.token_hex(16)}", "topics": ["t1"]}
    elif scenario.name in ("register refresh", "register again"):
        fields = {"token": seeded_token(index), "topics": [f"t{index % 5}"], "locale": LOCALES[index % 8]}
    else:
        fields = {}
    if scenario.method == "POST":
        body = json.dumps({"app": "portal", "platform": "android", "provider": "fcm", **fields}).encode()
        headers += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    if scenario.name != "register new":
        headers += f"Authorization: Bearer {credential(index)}\r\n"
    return (headers + "\r\n").encode() + body


async def open_loop(
    port: int, scenario: Scenario, rate: float, seconds: float, readers: int
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    latencies: list[float] = []
    errors = 0
    slots = asyncio.Semaphore(2000)
    expected = f"HTTP/1.1 {scenario.status} ".encode()

    async def exchange(
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes
    ) -> bytes:
        reader, writer = connection
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for header in head.split(b"\r\n"):
            if header.lower().startswith(b"content-length:"):
                length = int(header.split(b":", 1)[1])
        await reader.readexactly(length)
        return head

    async def one(due: float) -> None:
        nonlocal errors
        async with slots:
            request = request_for(scenario, readers)
            connection = idle.pop() if idle else await asyncio.open_connection("127.0.0.1", port)
            try:
                head = await exchange(connection, request)
            except (asyncio.IncompleteReadError, ConnectionError):
                # The server closed an idle keep-alive connection: a new one, same request.
                connection[1].close()
                connection = await asyncio.open_connection("127.0.0.1", port)
                head = await exchange(connection, request)
            latencies.append(loop.time() - due)
            if not head.startswith(expected):
                errors += 1
            idle.append(connection)

    tasks = []
    start = loop.time() + 0.05
    for k in range(int(rate * seconds)):
        due = start + k / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e6

    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "errors": errors,
        "p50": pct(0.50),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "max": latencies[-1] * 1e6,
        "connections": len(idle),
    }


# --- capacity ------------------------------------------------------------------------------

# A rate is sustained when every request got its expected answer, the run ended on time (no
# backlog left to drain) and p99 stayed under this: past capacity the backlog grows for the
# whole run and p99 climbs to seconds, so the exact bound matters little.
SUSTAINED_P99_MS = 250.0


def sustained(rate: float, seconds: float, figures: dict[str, Any]) -> bool:
    on_time = figures["seconds"] <= seconds + 0.5
    return bool(figures["errors"] == 0 and on_time and figures["p99"] / 1000 <= SUSTAINED_P99_MS)


def _probe(
    probe: Callable[[float], dict[str, Any]], rate: float, seconds: float, report: Callable[[str], None]
) -> bool:
    figures = probe(rate)
    ok = sustained(rate, seconds, figures)
    achieved = figures["requests"] / figures["seconds"]
    p99, errors = figures["p99"] / 1000, figures["errors"]
    report(f"  probe {rate:,.0f}/s: {achieved:,.0f}/s, p99 {p99:,.0f} ms, errors {errors} → {ok}")
    return ok


def search_capacity(
    probe: Callable[[float], dict[str, Any]], *, start: float, seconds: float, report: Callable[[str], None]
) -> float:
    """The highest sustained rate: ×1.4 steps up from ``start`` until one fails, then two
    bisections between the last sustained rate and the first failed one."""
    best, failed, rate = 0.0, 0.0, start
    while not failed:
        ok = _probe(probe, rate, seconds, report)
        if ok:
            best, rate = rate, round(rate * 1.4)
        else:
            failed = rate
        if rate > 5000:
            break
    for _ in range(2):
        if not failed or failed - best <= max(5.0, best * 0.05):
            break
        rate = round((best + failed) / 2)
        ok = _probe(probe, rate, seconds, report)
        if ok:
            best = rate
        else:
            failed = rate
    return best
