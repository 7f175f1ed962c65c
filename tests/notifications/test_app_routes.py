"""A push goes out with its app's FCM project and APNs topic (issue 19 item 6): a third app made
through the API, a member's phones registered for it, a push sent for it through real workers
to the provider emulator, on both FCM transports; the seeded apps keep the configured ones."""

from __future__ import annotations

import uuid

import pytest

from auth.roles import Role
from emulator.credentials import DEFAULT_PROJECT_ID
from notifications.content import PushContent, PushSpec
from notifications.payloads import render
from notifications.providers.base import Outcome, PushRequest
from notifications.providers.registry import build_providers, close_providers
from tests.notifications.helpers import load, run_workers
from tests.support.factories import make_account, make_unit, sign_in
from workers.context import WorkerResources, arq_ctx

HANDBOOK = {
    "code": "handbook",
    "name": "Sổ tay đảng viên",
    "fcm_project_id": "handbook-project",
    "apns_topic": "vn.dang.handbook",
    "languages": ["vi", "en"],
}


async def _phones(client, headers: dict[str, str], app: str) -> tuple[str, str]:
    fcm_token, apns_token = f"fcm-{uuid.uuid4().hex}", uuid.uuid4().hex * 2
    for platform, token in (("android", fcm_token), ("ios", apns_token)):
        body = {"app": app, "platform": platform, "token": token, "locale": "en"}
        response = await client.post("/v1/devices", json=body, headers=headers)
        assert response.status_code == 201, response.text
    return fcm_token, apns_token


async def _push(client, headers: dict[str, str], app: str, user_id: uuid.UUID) -> str:
    body = {
        "app": app,
        "kind": "handbook.chapter",
        "priority": "high",
        "title": {"vi": "Chương mới", "en": "New chapter"},
        "body": {"vi": "Nội dung", "en": "Content"},
        "audience": {"users": [str(user_id)]},
    }
    response = await client.post("/v1/notifications", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


@pytest.mark.parametrize("transport", ["http1", "firebase_admin"])
async def test_a_third_apps_push_reaches_its_fcm_project_and_apns_topic(
    client, emulator, emulated_settings, monkeypatch, transport
):
    monkeypatch.setattr(emulated_settings, "fcm_transport", transport)
    sender = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    sender_headers = await sign_in(client, sender)
    created = await client.post("/v1/apps", json=HANDBOOK, headers=sender_headers)
    assert created.status_code == 201, created.text
    member = await make_account(role=Role.MEMBER, unit=await make_unit(), enrolled=False)
    member_headers = await sign_in(client, member)
    handbook_fcm, handbook_apns = await _phones(client, member_headers, "handbook")
    portal_fcm, portal_apns = await _phones(client, member_headers, "portal")

    handbook_push = await _push(client, sender_headers, "handbook", member.id)
    portal_push = await _push(client, sender_headers, "portal", member.id)
    providers = build_providers(emulated_settings)
    try:
        await run_workers(arq_ctx(WorkerResources(providers=providers)))
    finally:
        await close_providers(providers)

    for notification_id in (handbook_push, portal_push):
        notification, _ = await load(notification_id)
        assert (notification.status, notification.sent, notification.failed) == ("completed", 2, 0)
    expected = {
        handbook_fcm: ("fcm", ":path", "/v1/projects/handbook-project/messages:send"),
        handbook_apns: ("apns", "apns-topic", "vn.dang.handbook"),
        portal_apns: ("apns", "apns-topic", emulated_settings.apns_topic),
    }
    for token, (provider, header, value) in expected.items():
        records = emulator.log.find(token=token)
        assert len(records) == 1, token
        record = records[0].as_json()
        assert (record["provider"], record["status"]) == (provider, 200)
        assert record["headers"][header] == value, token
    # The portal's FCM project is the configured one: here the emulator service account's.
    portal_path = emulator.log.find(token=portal_fcm)[0].as_json()["headers"][":path"]
    assert portal_path == f"/v1/projects/{DEFAULT_PROJECT_ID}/messages:send"
    handbook_payload = emulator.log.find(token=handbook_fcm)[0].as_json()["payload"]
    assert handbook_payload["message"]["notification"]["title"] == "New chapter"


@pytest.mark.parametrize("transport", ["http1", "firebase_admin"])
async def test_one_send_call_with_several_projects_sends_each_to_its_own(
    emulator, emulated_settings, monkeypatch, transport
):
    """The pipeline hands a provider one notification (one project) per call; a call that mixes
    specs still sends every message to its own project, in order."""
    monkeypatch.setattr(emulated_settings, "fcm_transport", transport)
    content = PushContent(
        kind="notice", priority="normal", sensitivity="public", title={"vi": "T"}, body={"vi": "B"}
    )
    specs = {
        project: PushSpec(id=str(uuid.uuid4()), content=content, fcm_project_id=project)
        for project in (None, "handbook-project", "other-project")
    }
    order = [None, "handbook-project", "handbook-project", None, "other-project", "handbook-project"]
    requests = []
    for project in order:
        spec = specs[project]
        requests.append(PushRequest(token=f"fcm-{uuid.uuid4().hex}", spec=spec, push=render(spec, "vi")))
    providers = build_providers(emulated_settings, paced=False)
    try:
        results = await providers["fcm"].send(requests)
    finally:
        await close_providers(providers)
    assert [result.outcome for result in results] == [Outcome.ACCEPTED] * len(order)
    for request, project in zip(requests, order, strict=True):
        path = emulator.log.find(token=request.token)[0].as_json()["headers"][":path"]
        assert path == f"/v1/projects/{project or DEFAULT_PROJECT_ID}/messages:send"
