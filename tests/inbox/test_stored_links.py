"""The inbox shows a stored link only if it passes today's rules (issue 12, item 7): rows
written before the rule existed must not hand a ``javascript:`` link to the app."""

from __future__ import annotations

import uuid

from sqlalchemy import update

from core.db import transaction
from notifications.models import Notification
from tests.inbox.helpers import send, signed_in
from tests.notifications.helpers import central_sender
from tests.support.factories import make_unit


async def test_an_old_row_with_an_unsafe_link_is_shown_without_it(client):
    sender = await central_sender(client)
    reader = await signed_in(client, unit=await make_unit())
    notification_id = await send(client, sender, audience={"users": [str(reader.reader_id)]})
    async with transaction() as session:
        await session.execute(
            update(Notification)
            .where(Notification.id == uuid.UUID(notification_id))
            .values(deep_link="javascript:alert(document.cookie)")
        )
    listed = (await client.get("/v1/inbox", headers=reader.headers)).json()["items"]
    assert [item["deep_link"] for item in listed] == [None]
    item = (await client.get(f"/v1/inbox/{notification_id}", headers=reader.headers)).json()
    assert item["deep_link"] is None and item["title"]  # the rest of the item is intact


async def test_a_safe_link_reaches_the_inbox_unchanged(client):
    sender = await central_sender(client)
    reader = await signed_in(client, unit=await make_unit())
    notification_id = await send(
        client, sender, audience={"users": [str(reader.reader_id)]}, deep_link="https://dangcongsan.vn/a"
    )
    item = (await client.get(f"/v1/inbox/{notification_id}", headers=reader.headers)).json()
    assert item["deep_link"] == "https://dangcongsan.vn/a"
