"""Who may send and read notifications: staff with the permission, API clients with the scope,
within their own subtree."""

import uuid

from auth.roles import Role
from tests.api_clients.helpers import bearer, create_client
from tests.notifications.helpers import broadcast, notification_body
from tests.support.factories import make_account, make_unit, sign_in


async def test_api_client_with_scope_sends_to_its_subtree_and_reads_its_own(client):
    root = await make_unit()
    province = await make_unit(parent=root)
    admin = await make_account(role=Role.UNIT_ADMIN, unit=province)
    officer = await make_account(role=Role.TASK_OFFICER, unit=province)
    headers = await sign_in(client, admin)
    key = (await create_client(client, headers, province.id))["api_key"]
    body = notification_body(app="tracking", kind="task.assigned", audience={"users": [str(officer.id)]})
    sent = await client.post("/v1/notifications", json=body, headers=bearer(key))
    assert sent.status_code == 202, sent.text
    assert (
        await client.get(f"/v1/notifications/{sent.json()['id']}", headers=bearer(key))
    ).status_code == 200
    # A province's system cannot broadcast to every reader, nor reach another subtree.
    broadcast_refused = await client.post("/v1/notifications", json=notification_body(), headers=bearer(key))
    assert broadcast_refused.status_code == 403
    assert broadcast_refused.json()["error"]["code"] == "four_eyes_required"
    stranger = await make_account(role=Role.TASK_OFFICER, unit=await make_unit())
    outside = notification_body(app="tracking", audience={"users": [str(stranger.id)]})
    assert (await client.post("/v1/notifications", json=outside, headers=bearer(key))).status_code == 404


async def test_api_client_without_the_scope_and_staff_without_permission_are_refused(client):
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    headers = await sign_in(client, admin)
    key = (await create_client(client, headers, unit.id, scopes=["tracking:write"]))["api_key"]
    body = notification_body(audience={"units": [str(unit.id)]})
    refused = await client.post("/v1/notifications", json=body, headers=bearer(key))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "missing_scope"
    editor = await make_account(role=Role.EDITOR, unit=unit)
    denied = await client.post("/v1/notifications", json=body, headers=await sign_in(client, editor))
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "permission_denied"


async def test_notifications_of_other_units_are_404(client):
    root = await make_unit()
    sender = await make_account(role=Role.SYSTEM_ADMIN, unit=root)
    notification = {"id": await broadcast(client, await sign_in(client, sender))}
    other_unit = await make_unit()
    publisher = await make_account(role=Role.PUBLISHER, unit=other_unit)
    headers = await sign_in(client, publisher)
    assert (await client.get(f"/v1/notifications/{notification['id']}", headers=headers)).status_code == 404
    assert (await client.get(f"/v1/notifications/{uuid.uuid4()}", headers=headers)).status_code == 404


async def test_invalid_notifications_are_422(client):
    root = await make_unit()
    sender = await make_account(role=Role.SYSTEM_ADMIN, unit=root)
    headers = await sign_in(client, sender)
    cases = [
        notification_body(title={"en": "No Vietnamese"}),
        notification_body(audience={}),
        notification_body(data={"from": "reserved"}),
        notification_body(data={"n": 1}),
        notification_body(ttl_seconds=29 * 86400),
        notification_body(priority="urgent"),
        notification_body(deep_link="javascript:alert(1)"),
        {**notification_body(), "status": "completed"},
    ]
    for body in cases:
        response = await client.post("/v1/notifications", json=body, headers=headers)
        assert response.status_code == 422, (body, response.text)
