"""Classified tasks (D-17): nothing of the task travels in a push or shows in an inbox preview."""

from __future__ import annotations

import json
import uuid

from core.db import transaction
from devices import service as devices
from devices.schemas import DeviceRegister
from tests.notifications.helpers import run_workers
from tests.support.factories import sign_in
from tests.tracking.helpers import confirm_all, set_clock, task, tick, upsert

SECRET_CODE = "MAT_0042"
SECRET_NAME = "Phương án bảo vệ bí mật"


async def register_tracking_device(user_id: uuid.UUID) -> str:
    token = f"ok-{uuid.uuid4().hex}"
    async with transaction() as session:
        body = DeviceRegister(app="tracking", platform="android", token=token, locale="vi")
        await devices.register(session, body=body, user_id=user_id)
    return token


async def test_classified_reminders_carry_no_content_in_push_or_inbox(
    client, org, emulator, worker_ctx, use_rules
):
    use_rules(open_sensitivity="public", deadline_offsets=[0])
    token = await register_tracking_device(org.officer.id)
    await upsert(
        client,
        org,
        task(org, SECRET_CODE, name=SECRET_NAME, classified=True, deadline="2026-12-14"),
        task(org, "OPEN_01", name="Nhiệm vụ thường", deadline="2026-12-14"),
    )
    await confirm_all()
    set_clock("2026-12-14 08:00:30")
    assert len(await tick()) == 2
    await run_workers(worker_ctx)

    payloads = [
        json.dumps(r.as_json()["payload"], ensure_ascii=False) for r in emulator.log.find(token=token)
    ]
    # The reminders; the "assigned" pushes of three weeks earlier expired unsent (3-day TTL).
    assert len(payloads) == 2
    secret = [p for p in payloads if "OPEN_01" not in p]
    assert len(secret) == 1
    for payload in secret:
        assert SECRET_CODE not in payload and SECRET_NAME not in payload
        assert '"sensitivity": "classified"' in payload
    # The open task's reminder does carry its text (rules: open_sensitivity=public).
    assert any("OPEN_01" in p and "Nhiệm vụ đến hạn hôm nay" in p for p in payloads)

    headers = await sign_in(client, org.officer)
    inbox = await client.get("/v1/inbox", params={"app": "tracking"}, headers=headers)
    assert inbox.status_code == 200, inbox.text
    items = inbox.json()["items"]
    assert len(items) == 4
    classified = [i for i in items if i["sensitivity"] == "classified"]
    assert len(classified) == 2  # the inbox keeps the expired "assigned" item too
    for item in classified:
        full = await client.get(f"/v1/inbox/{item['id']}", headers=headers)
        for shown in (json.dumps(item, ensure_ascii=False), json.dumps(full.json(), ensure_ascii=False)):
            assert SECRET_CODE not in shown and SECRET_NAME not in shown
