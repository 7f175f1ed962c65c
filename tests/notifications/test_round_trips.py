"""What one send batch costs the database, in round trips (issue 16: the pipeline's own work per
delivery). A batch of four chunks is claimed, its badges read twice, each chunk written with the
next one's go-ahead in the same statement, and the batch settled: no transaction of its own
around any of them (each statement commits by itself), no status read between the chunks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from core.db import get_engine, transaction
from inbox.badges import unread_badges
from notifications import delivery, fanout
from notifications.models import DeliveryBatch
from tests.notifications.conftest import register_devices
from tests.notifications.helpers import broadcast, central_sender, load

LOCALES = ("vi", "en", "zh", "fr", "es", "ru")


@pytest.fixture
def round_trips() -> Iterator[list[str]]:
    """Every statement the engine's connections send, by SQLAlchemy or on the asyncpg driver
    directly (core/raw_sql.py, inbox/badges.py), with the BEGINs and COMMITs."""
    seen: list[str] = []
    drivers: set[Any] = set()

    def logged(query: Any) -> None:
        seen.append(" ".join(query.query.split())[:60])

    def through_sqlalchemy(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split())[:60])

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        if driver not in drivers:
            drivers.add(driver)
            driver.add_query_logger(logged)  # the driver's own statements, BEGIN and COMMIT

    engine = get_engine().sync_engine
    event.listen(engine, "before_cursor_execute", through_sqlalchemy)
    event.listen(engine.pool, "checkout", checkout)
    yield seen
    event.remove(engine, "before_cursor_execute", through_sqlalchemy)
    event.remove(engine.pool, "checkout", checkout)
    for driver in drivers:
        driver.remove_query_logger(logged)


@pytest.fixture
def sessions() -> Iterator[list[int]]:
    """One entry per session that took a connection (its transaction began with one)."""
    begun: list[int] = []

    def began(session: Any, transaction: Any, connection: Any) -> None:
        begun.append(1)

    event.listen(Session, "after_begin", began)
    yield begun
    event.remove(Session, "after_begin", began)


# asyncpg's first use of a statement's types on a connection (once per connection and type).
_INTROSPECTION = ("WITH RECURSIVE typeinfo_tree", "SELECT current_setting('jit')", "SELECT set_config('jit'")


async def test_a_batch_of_four_chunks_takes_few_round_trips(
    client, emulator, providers, round_trips, sessions, monkeypatch
):
    # Two pages of 40 devices: the first batch warms the process's caches (the push's content,
    # the app's broadcast window), the second is counted.
    monkeypatch.setattr(fanout, "PAGE_SIZE", 40)
    specs = [("fcm", f"fcm-{i}-{uuid.uuid4().hex}", LOCALES[i % 6]) for i in range(60)]
    specs += [("apns", uuid.uuid4().hex * 2, LOCALES[i % 6]) for i in range(20)]
    await register_devices(specs)
    headers = await central_sender(client)
    notification_id = uuid.UUID(await broadcast(client, headers))
    await fanout.fan_out(notification_id=notification_id)
    async with transaction() as session:
        pages = (
            await session.scalars(
                select(DeliveryBatch.low_id)
                .where(DeliveryBatch.notification_id == notification_id)
                .order_by(DeliveryBatch.low_id)
            )
        ).all()
    assert len(pages) == 2
    sent = 0
    for low_id in pages:
        round_trips.clear()
        sessions.clear()
        totals = await delivery.send_batch(
            notification_id=notification_id, low_id=low_id, providers=providers, badge_source=unread_badges
        )
        sent += totals["sent"]
        statements = [s for s in round_trips if not s.startswith(_INTROSPECTION)]
        used = len(sessions)

    assert sent == 80, totals
    notification, deliveries = await load(notification_id)
    assert notification.status == "completed" and {d.status for d in deliveries} == {"sent"}
    # No transaction around a statement: claim, record and settle each commit by themselves.
    assert not [s for s in statements if s.startswith(("BEGIN", "COMMIT"))], statements
    # Four writes (one a chunk, each renewing the lease and reading the next chunk's go-ahead in
    # the same statement), no status read of its own; one claim, one settle.
    assert sum(s.startswith("WITH renewed AS") for s in statements) == 4, statements
    assert not [s for s in statements if s.startswith("SELECT notifications.status")], statements
    # claim 1, badges 2 × 2 (the notification, the devices), records 4, settle 1.
    assert len(statements) == 10, statements
    # Only the two badge reads use a session: the claim, the writes and the settle run on a
    # pooled connection's driver without one (core/raw_sql.py ``pooled_driver``), where a
    # session around each cost several times the statement's own CPU.
    assert used == 2, used


async def test_a_fan_out_page_is_a_read_and_a_write(client, round_trips, monkeypatch):
    # Three pages of 40 devices and an empty last one. Once per slice the notification is read
    # (and its sender's unit); then each page is its audience read and one write, which locks
    # the notification row for that statement only (no BEGIN ... COMMIT around the page: the
    # chunks' records, which update the same row, used to wait for the whole transaction).
    monkeypatch.setattr(fanout, "PAGE_SIZE", 40)
    await register_devices([("fcm", f"fcm-{i}-{uuid.uuid4().hex}", LOCALES[i % 6]) for i in range(120)])
    notification_id = uuid.UUID(await broadcast(client, await central_sender(client)))
    round_trips.clear()
    assert await fanout.fan_out(notification_id=notification_id) == 4
    statements = [s for s in round_trips if not s.startswith(_INTROSPECTION)]
    assert not [s for s in statements if s.startswith(("BEGIN", "COMMIT"))], statements
    assert sum(s.startswith("WITH planned AS") for s in statements) == 4, statements
    assert len(statements) == 2 + 4 * 2, statements
