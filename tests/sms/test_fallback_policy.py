"""When an SMS goes out, and when it never does (D-31)."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from core import clock
from core.db import transaction
from inbox.models import InboxItem
from notifications.sms import sweep
from tests.sms.helpers import TEXT, admin_headers, after_window, audit_rows, ledger, notify, person, sink
from tests.support.factories import make_unit


async def test_emergency_without_receipt_gets_exactly_one_sms_with_the_fixed_text(
    client, emulator, sms_provider
):
    unit = await make_unit()
    sender = await admin_headers(client, unit)
    reader = await person(client, unit)
    notification_id = await notify(client, sender, audience={"users": [str(reader.id)]})

    clock.advance(9 * 60)  # still inside the acknowledgement window
    assert (await sweep.run_once(sms_provider)).sent == 0
    assert await sink(emulator) == []

    after_window()
    assert (await sweep.run_once(sms_provider)).sent == 1
    assert (await sweep.run_once(sms_provider)).sent == 0  # at most once, ever
    clock.advance(3600)
    assert (await sweep.run_once(sms_provider)).sent == 0

    messages = await sink(emulator)
    assert len(messages) == 1
    assert messages[0]["to"] == reader.phone
    assert messages[0]["text"] == TEXT
    assert messages[0]["sender"] == "CHUONG"
    rows = await ledger(notification_id)
    assert [(row.user_id, row.status, row.reason, row.attempts) for row in rows] == [
        (reader.id, "sent", "emergency_unacknowledged", 1)
    ]
    assert rows[0].provider_message_id == messages[0]["id"]
    sent = await audit_rows("sms.sent")
    assert len(sent) == 1 and sent[0].object_id == str(notification_id)
    assert sent[0].details["user_id"] == str(reader.id) and sent[0].actor_kind == "system"
    assert str(reader.phone) not in str(sent[0].details)

    metrics = (await client.get("/metrics")).text
    assert 'chuong_sms_messages_total{reason="emergency_unacknowledged",status="sent"}' in metrics


@pytest.mark.parametrize("event", ["received", "opened"])
async def test_no_sms_when_a_device_acknowledged_in_time(client, emulator, sms_provider, event):
    unit = await make_unit()
    sender = await admin_headers(client, unit)
    acknowledged, silent = await person(client, unit), await person(client, unit)
    notification_id = await notify(client, sender, audience={"users": [str(acknowledged.id), str(silent.id)]})
    clock.advance(4 * 60)
    response = await client.post(
        f"/v1/inbox/{notification_id}/receipts", json={"event": event}, headers=acknowledged.headers
    )
    assert response.status_code == 200, response.text

    after_window()
    await sweep.run_once(sms_provider)
    assert [message["to"] for message in await sink(emulator)] == [silent.phone]


async def test_reading_the_item_in_the_inbox_counts_as_acknowledged(client, emulator, sms_provider):
    unit = await make_unit()
    sender = await admin_headers(client, unit)
    reader = await person(client, unit)
    notification_id = await notify(client, sender, audience={"users": [str(reader.id)]})
    response = await client.post(f"/v1/inbox/{notification_id}/read", headers=reader.headers)
    assert response.status_code == 200, response.text
    after_window()
    await sweep.run_once(sms_provider)
    assert await sink(emulator) == [] and await ledger() == []


async def test_normal_high_routine_and_broadcast_notifications_never_go_by_sms(
    client, emulator, sms_provider
):
    unit = await make_unit()
    sender = await admin_headers(client, unit)
    reader = await person(client, unit)
    users = {"users": [str(reader.id)]}
    await notify(client, sender, audience=users, priority="normal")
    await notify(client, sender, audience=users, priority="high")
    await notify(client, sender, audience=users, priority="emergency", kind="tracking.reminder.due_day")
    await notify(client, sender, audience=users, priority="emergency", kind="reminder.deadline")
    await notify(client, sender, audience={"all": True}, priority="emergency", app="portal")
    await notify(client, sender, audience={"topics": ["bao-lu"]}, priority="emergency", app="portal")

    after_window(3600)
    stats = await sweep.run_once(sms_provider)
    assert stats.queued == stats.sent == 0
    assert await sink(emulator) == [] and await ledger() == []


async def test_anonymous_device_readers_are_never_candidates(client, emulator, sms_provider):
    unit = await make_unit()
    sender = await admin_headers(client, unit)
    device = await client.post(
        "/v1/devices", json={"app": "portal", "platform": "android", "token": "fcm-anon-1", "locale": "vi"}
    )
    assert device.status_code == 201, device.text
    notification_id = await notify(
        client, sender, audience={"devices": [device.json()["id"]]}, priority="emergency", app="portal"
    )
    async with transaction() as session:  # the anonymous reader has its inbox row
        result = await session.execute(
            update(InboxItem).where(InboxItem.notification_id == notification_id).values(archived_at=None)
        )
        assert result.rowcount == 1  # type: ignore[attr-defined]
    after_window()
    await sweep.run_once(sms_provider)
    assert await ledger() == []


async def test_users_without_a_phone_are_recorded_once_and_never_retried(client, emulator, sms_provider):
    unit = await make_unit()
    sender = await admin_headers(client, unit)
    reader = await person(client, unit, phone=False)
    notification_id = await notify(client, sender, audience={"users": [str(reader.id)]})
    after_window()
    assert (await sweep.run_once(sms_provider)).no_phone == 1
    assert (await sweep.run_once(sms_provider)).no_phone == 0
    assert [row.status for row in await ledger(notification_id)] == ["no_phone"]
    assert len(await audit_rows("sms.no_phone")) == 1
    assert await sink(emulator) == []


async def test_notifications_older_than_the_lookback_are_ignored(
    client, emulator, sms_provider, sms_settings
):
    unit = await make_unit()
    sender = await admin_headers(client, unit)
    reader = await person(client, unit)
    await notify(client, sender, audience={"users": [str(reader.id)]})
    clock.advance(sms_settings.sms_lookback_minutes * 60 + 60)
    await sweep.run_once(sms_provider)
    assert await ledger() == []
