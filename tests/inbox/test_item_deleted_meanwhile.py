"""Marking read, archiving or reporting a receipt while the notification is being deleted (the
retention purge): the write refers to a row that is gone by the time it lands. The answer is a
409 in the error shape, nothing written; it was a 500 (the foreign key's violation)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from auth.roles import Role
from tests.contract.support import assert_error
from tests.inbox.helpers import anonymous_device, send, signed_in
from tests.support.factories import make_account, make_unit, sign_in
from tests.support.held_rows import until_waiting


async def _deleted_meanwhile(owner_engine: Any, notification_id: str, request: Any) -> Any:
    """``request`` runs while another transaction deletes the notification; that transaction
    commits once the request waits for it (the request has read the item by then)."""
    async with owner_engine.connect() as purge:
        transaction = await purge.begin()
        await purge.execute(text("DELETE FROM notifications WHERE id = :id"), {"id": notification_id})
        running = asyncio.ensure_future(request)
        await until_waiting(owner_engine)
        await transaction.commit()
        return await running


@pytest.mark.parametrize(
    ("reader_kind", "audience", "action", "body"),
    [
        ("user", "all", "read", None),
        ("user", "all", "archive", None),
        ("device", "all", "receipts", {"event": "received"}),
        ("user", "named", "receipts", {"event": "opened"}),
    ],
)
async def test_a_write_on_an_item_deleted_meanwhile_is_409_not_500(
    client, redis, owner_engine, reader_kind, audience, action, body
):
    unit = await make_unit()
    sender = await sign_in(client, await make_account(role=Role.SYSTEM_ADMIN, unit=unit))
    reader = await (signed_in(client, unit=unit) if reader_kind == "user" else anonymous_device(client))
    named = {"audience": {"users": [str(reader.reader_id)]}}
    overrides: dict[str, Any] = named if audience == "named" else {}
    notification_id = await send(client, sender, **overrides)
    response = await _deleted_meanwhile(
        owner_engine,
        notification_id,
        client.post(f"/v1/inbox/{notification_id}/{action}", headers=reader.headers, json=body),
    )
    assert_error(response, 409, "conflict")
    async with owner_engine.connect() as conn:
        for table in ("broadcast_states", "receipts", "inbox_items"):
            left = await conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE notification_id = :id"),
                {"id": uuid.UUID(notification_id)},
            )
            assert left.scalar_one() == 0, table
