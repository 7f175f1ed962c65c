"""What every fault-matrix scenario (issue 18) checks once its broadcast finished, and the
figures it prints: zero lost deliveries, duplicates within the scenario's bound, no batch left
open, the notification's counters equal to its delivery rows."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import text

from emulator import Emulator
from emulator.records import MessageRecord
from tests.notifications.helpers import broadcast, central_sender
from tests.notifications.test_resilience import (
    counts,
    insert_devices,
    start_worker,
    stop,
    wait_for,
    worker_log,
)


@dataclass(frozen=True)
class Recovery:
    final: dict[str, int]  # the notification's status and its delivery rows per status
    devices: int
    reached: int  # devices the emulator accepted a push for
    duplicates: int  # accepted pushes beyond one per device
    duplicates_by_provider: dict[str, int]
    most_pushes: int  # the most pushes one device was sent
    counters: tuple[int, int, int, int]  # targeted, sent, invalid, failed on the notification
    open_batches: int
    max_attempts: int  # most provider attempts one delivery took

    @property
    def lost(self) -> int:
        return self.devices - self.reached

    def line(self) -> str:
        return (
            f"{self.reached} of {self.devices} devices reached, {self.lost} lost, "
            f"{self.duplicates} duplicates {self.duplicates_by_provider} "
            f"(at most {self.most_pushes} pushes to one device), at most {self.max_attempts} attempts, "
            f"{self.open_batches} batches open, final {self.final}"
        )


def requests_per_token(emulator: Emulator) -> dict[str, list[MessageRecord]]:
    """Every request the emulator answered, per token, oldest first."""
    per_token: dict[str, list[MessageRecord]] = defaultdict(list)
    for record in emulator.log.find(limit=len(emulator.log) + 1):
        per_token[record.token].append(record)
    return per_token


async def recovery(owner_engine, emulator: Emulator, notification_id: str, *, devices: int) -> Recovery:
    accepted: Counter[str] = Counter()
    providers: dict[str, str] = {}
    for record in emulator.log.find(limit=len(emulator.log) + 1):
        if record.status == 200:
            accepted[record.token] += 1
            providers[record.token] = record.provider
    duplicates = Counter({"fcm": 0, "apns": 0})
    for token, n in accepted.items():
        duplicates[providers[token]] += n - 1
    async with owner_engine.connect() as conn:
        counters = (
            await conn.execute(
                text("SELECT targeted, sent, invalid, failed FROM notifications WHERE id = :id"),
                {"id": notification_id},
            )
        ).one()
        open_batches = (
            await conn.execute(
                text("SELECT count(*) FROM delivery_batches WHERE notification_id = :id AND status = 'open'"),
                {"id": notification_id},
            )
        ).scalar_one()
        max_attempts = (
            await conn.execute(
                text("SELECT coalesce(max(attempts), 0) FROM deliveries WHERE notification_id = :id"),
                {"id": notification_id},
            )
        ).scalar_one()
    return Recovery(
        final=await counts(owner_engine, notification_id),
        devices=devices,
        reached=len(accepted),
        duplicates=duplicates.total(),
        duplicates_by_provider=dict(duplicates),
        most_pushes=max(accepted.values(), default=0),
        counters=tuple(counters),  # type: ignore[arg-type]
        open_batches=open_batches,
        max_attempts=max_attempts,
    )


def assert_recovered(result: Recovery, *, max_duplicates: int) -> None:
    final = result.final
    assert final["notification"] == "completed", final
    assert final.get("sent", 0) == result.devices, final  # none failed, none left pending
    assert result.lost == 0
    assert result.duplicates <= max_duplicates, result.line()
    assert result.open_batches == 0
    rows = (final.get("sent", 0), final.get("invalid", 0), final.get("failed", 0))
    assert result.counters == (result.devices, *rows)  # counters equal to the rows


async def run_broadcast_through(
    client,
    database_url: str,
    owner_engine,
    emulator: Emulator,
    fault: Callable[[], Awaitable[object]],
    *,
    devices: int,
    sent_before: int = 1,
    logs: list[str] | None = None,
) -> tuple[str, float]:
    """Starts a real worker on a broadcast to ``devices`` devices, runs ``fault()`` once
    ``sent_before`` pushes went out, and waits for the notification to complete; returns its id
    and the seconds from the end of the fault to completion. The worker must outlive the fault."""
    await insert_devices(owner_engine, devices)
    headers = await central_sender(client)
    notification_id = await broadcast(client, headers)
    worker = start_worker(database_url, emulator)
    try:

        async def flowing() -> bool:
            return (await counts(owner_engine, notification_id)).get("sent", 0) >= sent_before

        await wait_for(flowing, timeout=120, what="pushes to go out")
        await fault()
        ended = time.monotonic()

        async def done() -> bool:
            try:
                return (await counts(owner_engine, notification_id))["notification"] == "completed"
            except OSError:  # the test's own connection may meet a database fault too
                return False

        await wait_for(done, timeout=240, what="the worker to finish after the fault")
        assert worker.poll() is None, "the worker must outlive the fault, not exit"
        return notification_id, time.monotonic() - ended
    finally:
        if logs is not None:  # what the worker logged, for the caller's checks
            logs.append(worker_log(worker))
        stop(worker)
