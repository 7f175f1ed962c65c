"""The soak's invariants (bench/soak.py), checked once the load stopped and everything drained,
per notification, from the database and the emulator's record of every request it accepted:

- lost: 0 — every targeted device's row ends sent (and the provider accepted that push), invalid
  or failed with a reason; nothing left pending or retrying;
- duplicates (accepted pushes beyond one per notification and device) within the bound of the
  faults that happened while the notification was under way (bench/soak_faults.py), and over
  the whole run within the sum of every fault's bound;
- no delivery batch left open;
- the notification's counters equal to its rows."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg

from bench.soak_faults import Fault
from bench.soak_stack import Stack

FINAL_ROWS = ("sent", "invalid", "failed")


@dataclass
class Outcome:
    id: str
    kind: str  # broadcast | targeted
    status: str
    created: float
    finished: float
    targeted: int
    rows: Counter[str]
    counters: tuple[int, int, int, int]  # targeted, sent, invalid, failed on the notification
    lost: int
    duplicates: int
    bound: int
    open_batches: int
    failed_without_reason: int

    @property
    def counters_match(self) -> bool:
        rows = (sum(self.rows.values()), *(self.rows.get(status, 0) for status in FINAL_ROWS))
        return self.counters == rows

    @property
    def ok(self) -> bool:
        return (
            self.status == "completed"
            and self.lost == 0
            and self.duplicates <= self.bound
            and self.open_batches == 0
            and self.counters_match
        )


def notification_of(payload: Any) -> str | None:
    """The notification a recorded request belongs to: FCM carries it in message.data, APNs at
    the top level of its JSON (notifications/payloads.py)."""
    if not isinstance(payload, dict):
        return None
    data = payload.get("message", {}).get("data", {}) if "message" in payload else payload
    value = data.get("notification_id") if isinstance(data, dict) else None
    return str(value) if value else None


async def accepted_pushes(control_url: str) -> tuple[Counter[tuple[str, str]], int]:
    """(notification, token) → requests the provider accepted; and how many recorded requests
    had no payload left to attribute (must be 0: the record keeps every payload)."""
    accepted: Counter[tuple[str, str]] = Counter()
    unattributed = 0
    timeout = aiohttp.ClientTimeout(total=600)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.get(f"{control_url}/messages", params={"limit": "100000000"}) as response,
    ):
        messages = (await response.json())["messages"]
    for message in messages:
        if message["status"] != 200:
            continue
        notification = notification_of(message["payload"])
        if notification is None:
            unattributed += 1
            continue
        accepted[(notification, message["token"])] += 1
    return accepted, unattributed


def bound_for(created: float, finished: float, faults: list[Fault]) -> int:
    """The duplicates the faults under way while a notification was being sent may cause."""
    return sum(
        fault.bound
        for fault in faults
        if fault.started <= finished and (fault.recovered or float("inf")) >= created
    )


async def outcomes(stack: Stack, faults: list[Fault], broadcasts: set[str]) -> list[Outcome]:
    accepted, unattributed = await accepted_pushes(stack.control_url)
    if unattributed:
        raise RuntimeError(f"{unattributed} accepted requests without a payload naming their notification")
    conn = await asyncpg.connect(stack.owner_dsn)
    try:
        notifications = await conn.fetch(
            "SELECT id::text, status, created_at, completed_at, targeted, sent, invalid, failed, audience "
            "FROM notifications ORDER BY created_at"
        )
        rows = await conn.fetch(
            "SELECT d.notification_id::text AS nid, v.token, d.status, d.error_code "
            "FROM deliveries d JOIN devices v ON v.id = d.device_id"
        )
        batches = await conn.fetch(
            "SELECT notification_id::text AS nid, count(*) AS n FROM delivery_batches "
            "WHERE status = 'open' GROUP BY notification_id"
        )
    finally:
        await conn.close()
    open_batches = {row["nid"]: row["n"] for row in batches}
    per_notification: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        per_notification.setdefault(row["nid"], []).append(row)
    now = dt.datetime.now(dt.UTC)
    results = []
    for n in notifications:
        nid = n["id"]
        mine = per_notification.get(nid, [])
        statuses = Counter(row["status"] for row in mine)
        lost = sum(1 for row in mine if row["status"] not in FINAL_ROWS)
        lost += sum(1 for row in mine if row["status"] == "sent" and not accepted[(nid, row["token"])])
        without_reason = sum(1 for row in mine if row["status"] == "failed" and not row["error_code"])
        tokens = {row["token"] for row in mine}
        duplicates = sum(max(0, accepted[(nid, token)] - 1) for token in tokens)
        created = n["created_at"].timestamp()
        finished = (n["completed_at"] or now).timestamp()
        audience = json.loads(n["audience"]) if isinstance(n["audience"], str) else n["audience"]
        kind = "broadcast" if nid in broadcasts or audience.get("all") else "targeted"
        results.append(
            Outcome(
                id=nid,
                kind=kind,
                status=n["status"],
                created=created,
                finished=finished,
                targeted=n["targeted"],
                rows=statuses,
                counters=(n["targeted"], n["sent"], n["invalid"], n["failed"]),
                lost=lost + without_reason,
                duplicates=duplicates,
                bound=bound_for(created, finished, faults),
                open_batches=open_batches.get(nid, 0),
                failed_without_reason=without_reason,
            )
        )
    return results
