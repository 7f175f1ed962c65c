"""The inbox follows notifications although notifications never import inbox (issue 13 item 2):
the process's start-up registers the inbox's on-created hook (notifications/on_created.py), and
the send job hands the pipeline the inbox's badge source (workers/delivery_jobs.py)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from core.config import get_settings
from core.db import transaction
from inbox import fanout
from inbox.models import InboxFanout, InboxItem
from notifications import on_created
from notifications.models import Notification
from tests.inbox.helpers import signed_in
from tests.notifications import conftest as pipeline
from tests.notifications.helpers import central_sender, notification_body, release_approved, run_workers
from tests.support.factories import make_unit

# The in-process emulator and real providers of the pipeline tests, as fixtures of this module.
emulator, emulated_settings = pipeline.emulator, pipeline.emulated_settings
providers, worker_ctx = pipeline.providers, pipeline.worker_ctx


@pytest.fixture
def unwired(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process whose start-up registered nothing (the tests' own registration undone)."""
    monkeypatch.setattr(on_created, "_on_created", None)


async def test_a_targeted_notification_from_the_api_reaches_the_inbox_and_its_push_carries_the_badge(
    client, emulator, worker_ctx
):
    sender = await central_sender(client)
    reader = await signed_in(client, unit=await make_unit(), portal_locale=None)
    token = f"fcm-{uuid.uuid4().hex}"
    device = await client.post(
        "/v1/devices",
        json={"app": "portal", "platform": "android", "token": token, "locale": "vi"},
        headers=reader.headers,
    )
    assert device.status_code == 201, device.text

    response = await client.post(
        "/v1/notifications",
        json=notification_body(audience={"users": [str(reader.reader_id)]}),
        headers=sender,
    )
    assert response.status_code == 202, response.text
    notification_id = response.json()["id"]
    await run_workers(worker_ctx)  # the push's fan-out and send, and the inbox's fan-out

    async with transaction() as session:
        readers = (
            await session.execute(
                select(InboxItem.reader_id).where(InboxItem.notification_id == uuid.UUID(notification_id))
            )
        ).scalars()
        assert list(readers) == [reader.reader_id]
    listed = (await client.get("/v1/inbox", headers=reader.headers)).json()["items"]
    assert [item["id"] for item in listed] == [notification_id]
    [push] = [record.as_json()["payload"]["message"] for record in emulator.log.find(token=token)]
    assert push["data"]["notification_id"] == notification_id
    assert push["data"]["badge"] == "1"
    assert push["android"]["notification"]["notification_count"] == 1


async def test_the_served_app_factory_registers_the_inbox_hook(unwired, database_url, redis):
    from cli.asgi import create_app

    create_app(manage_resources=False)

    assert on_created.registered() is fanout.schedule


async def test_the_worker_start_up_registers_the_inbox_hook(unwired, monkeypatch):
    from workers.settings import startup

    monkeypatch.setattr(get_settings(), "worker_metrics_port", None)
    monkeypatch.setattr(get_settings(), "log_json", False)
    await startup({})

    assert on_created.registered() is fanout.schedule


async def test_a_process_that_registered_no_hook_cannot_create_a_notification(client):
    sender = await central_sender(client)  # the app factory registered the hook...
    on_created.set_on_created(None)  # ...and this process forgot it
    try:
        with pytest.raises(on_created.OnCreatedNotWired):
            await release_approved(client, sender, notification_body(audience={"all": True}))
    finally:
        on_created.set_on_created(fanout.schedule)

    # The creating transaction rolled back: no notification without its inbox work.
    async with transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Notification)) == 0
        assert await session.scalar(select(func.count()).select_from(InboxFanout)) == 0
