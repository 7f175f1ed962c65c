"""Receipts are idempotent; the unread count of broadcasts is an index range scan."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from core.db import transaction, utcnow
from inbox import queries
from inbox.readers import Reader
from notifications.stats import receipt_counts
from tests.inbox.helpers import anonymous_device, send, signed_in, unread
from tests.notifications.helpers import central_sender
from tests.support.factories import make_unit


async def test_receipts_are_idempotent_and_opened_marks_the_item_read(client):
    sender = await central_sender(client)
    device = await anonymous_device(client)
    user = await signed_in(client, unit=await make_unit())
    notification_id = await send(client, sender)
    path = f"/v1/inbox/{notification_id}/receipts"

    received = await client.post(path, json={"event": "received"}, headers=device.headers)
    assert received.status_code == 200 and received.json()["opened_at"] is None
    assert (
        await client.post(path, json={"event": "received"}, headers=device.headers)
    ).json() == received.json()
    opened = (await client.post(path, json={"event": "opened"}, headers=device.headers)).json()
    assert opened["received_at"] == received.json()["received_at"] and opened["opened_at"] is not None
    assert (await client.post(path, json={"event": "opened"}, headers=device.headers)).json() == opened
    assert await unread(client, device) == 0
    # Opened without a received report first counts as both.
    await client.post(path, json={"event": "opened"}, headers=user.headers)
    bad = await client.post(path, json={"event": "clicked"}, headers=user.headers)
    assert bad.status_code == 422

    async with transaction() as session:
        counts = await receipt_counts(session, notification_id=uuid.UUID(notification_id))
    assert counts == (2, 2)


async def test_the_broadcast_unread_count_uses_the_partial_index(client, owner_engine):
    reader = Reader(
        id=uuid.uuid4(),
        kind="device",
        language="vi",
        since=utcnow(),
        subscriptions={"portal": ["van-kien"]},
    )
    async with transaction() as session:
        markers = {"portal": queries.Marker(position=(utcnow(), uuid.uuid4()), updated_at=utcnow())}
        statement = queries.broadcast_page(
            reader, queries.Filters(unread=True), markers=markers, before=None, limit=21
        )
        compiled = statement.compile(session.bind, compile_kwargs={"literal_binds": True})
    async with owner_engine.connect() as conn:
        await conn.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(row[0] for row in await conn.execute(text(f"EXPLAIN {compiled}")))
    assert "ix_notifications_broadcast" in plan, plan
