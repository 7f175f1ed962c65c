"""The four-eyes rule of pushes (D-04, notifications/policy.py): no principal reaches all portal
readers, a topic, or more than ``direct_push_max_recipients`` named recipients through
``POST /v1/notifications``; targeted pushes stay possible; the approved news release still works."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from auth.roles import Role
from core import clock
from core.config import get_settings
from core.db import transaction
from notifications import service as notification_service
from notifications.policy import FourEyesRequired
from tests.api_clients.helpers import bearer, create_client
from tests.notifications.conftest import register_devices
from tests.notifications.helpers import notification_body
from tests.support.factories import make_account, make_unit, sign_in
from tests.support.pushes import breaking_news

BROADCASTS: list[dict[str, object]] = [{"all": True}, {"topics": ["van-kien"]}, {"all": True, "users": []}]


def _targeted(kind: str, *, unit_id: uuid.UUID, user_id: uuid.UUID, device_id: uuid.UUID) -> dict:
    return {
        "users": {"users": [str(user_id)]},
        "units": {"units": [str(unit_id)]},
        "roles": {"roles": ["task_officer"]},
        "devices": {"devices": [str(device_id)]},
    }[kind]


async def _post(client, headers: dict[str, str], audience: dict, app: str = "portal"):
    return await client.post(
        "/v1/notifications", json=notification_body(app=app, audience=audience), headers=headers
    )


def _refused_for_four_eyes(response) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "four_eyes_required"
    assert "POST /v1/news" in error["message"]


@pytest.mark.parametrize("role", [Role.PUBLISHER, Role.SYSTEM_ADMIN])
async def test_staff_senders_cannot_broadcast_alone_but_reach_named_recipients(client, role):
    root = await make_unit()
    sender = await make_account(role=role, unit=root)
    officer = await make_account(role=Role.TASK_OFFICER, unit=root)
    [device_id] = await register_devices([("fcm", f"ok-{uuid.uuid4().hex}", "vi")])
    headers = await sign_in(client, sender)
    for audience in BROADCASTS:
        for app in ("portal", "tracking"):
            _refused_for_four_eyes(await _post(client, headers, audience, app=app))
    kinds = ["users", "units", "roles"] + (["devices"] if role == Role.SYSTEM_ADMIN else [])
    for kind in kinds:
        audience = _targeted(kind, unit_id=root.id, user_id=officer.id, device_id=device_id)
        response = await _post(client, headers, audience)
        assert response.status_code == 202, (kind, response.text)


async def test_an_api_client_with_notifications_send_cannot_broadcast(client):
    root = await make_unit()
    province = await make_unit(parent=root)
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=root)
    officer = await make_account(role=Role.TASK_OFFICER, unit=province)
    headers = await sign_in(client, admin)
    # A client of the root unit: the old rule let a central sender broadcast.
    key = bearer((await create_client(client, headers, root.id, scopes=["notifications:send"]))["api_key"])
    for audience in BROADCASTS:
        _refused_for_four_eyes(await _post(client, key, audience))
    for kind in ("users", "units"):
        audience = _targeted(kind, unit_id=province.id, user_id=officer.id, device_id=uuid.uuid4())
        response = await _post(client, key, audience)
        assert response.status_code == 202, (kind, response.text)


async def test_unit_admins_and_a_leaders_delegate_may_not_send_at_all(client):
    unit = await make_unit()
    unit_admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    leader = await make_account(role=Role.LEADER, unit=unit)
    assistant = await make_account(role=Role.MEMBER, unit=unit)
    officer = await make_account(role=Role.TASK_OFFICER, unit=unit)
    granted = await client.post(
        "/v1/delegations",
        headers=await sign_in(client, leader),
        json={
            "delegate_id": str(assistant.id),
            "permissions": ["notifications:read", "dashboard:read"],
            "expires_at": (clock.utcnow() + dt.timedelta(days=1)).isoformat(),
        },
    )
    assert granted.status_code == 201, granted.text
    delegate = {**await sign_in(client, assistant), "X-On-Behalf-Of": granted.json()["id"]}
    for headers in (await sign_in(client, unit_admin), delegate):
        for audience in (BROADCASTS[0], {"users": [str(officer.id)]}):
            response = await _post(client, headers, audience)
            assert response.status_code == 403, response.text
            assert response.json()["error"]["code"] == "permission_denied"


async def test_more_named_recipients_than_the_bound_need_the_news_workflow(client, monkeypatch):
    monkeypatch.setattr(get_settings(), "direct_push_max_recipients", 3)
    root = await make_unit()
    province = await make_unit(parent=root)
    publisher = await make_account(role=Role.PUBLISHER, unit=root)
    staff = [await make_account(role=Role.MEMBER, unit=province) for _ in range(3)]
    headers = await sign_in(client, publisher)
    # The unit's three accounts fit; one more (a sub-unit counts with its parent) does not.
    assert (await _post(client, headers, {"units": [str(province.id)]})).status_code == 202
    commune = await make_unit(parent=province)
    await make_account(role=Role.MEMBER, unit=commune)
    _refused_for_four_eyes(await _post(client, headers, {"units": [str(province.id)]}))
    users = [str(account.id) for account in staff]
    assert (await _post(client, headers, {"users": users})).status_code == 202
    fourth = await make_account(role=Role.MEMBER, unit=root)
    _refused_for_four_eyes(await _post(client, headers, {"users": [*users, str(fourth.id)]}))
    # The tracking app has no bound: it reaches only signed-in staff of the sender's subtree.
    many = {"units": [str(province.id)], "users": users}
    tracking = await _post(client, headers, many, app="tracking")
    assert tracking.status_code == 202, tracking.text


async def test_the_domain_refuses_a_broadcast_from_any_door_without_an_approval(database_url):
    """Every writer of notifications (tracking sender, workers, CLI) goes through
    ``create_prepared``: without the approved release a broadcast is refused there too."""
    unit = await make_unit()
    for audience in ({"all": True}, {"topics": ["van-kien"]}, {"recipients_of": str(uuid.uuid4())}):
        with pytest.raises(FourEyesRequired):
            async with transaction() as session:
                await notification_service.create_prepared(
                    session,
                    content=breaking_news(),
                    app="portal",
                    audience=audience,
                    audience_summary={},
                    created_by_kind="system",
                    created_by_id=uuid.uuid4(),
                    unit_id=unit.id,
                )
