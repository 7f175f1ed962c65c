"""The generic notifications route and the push payload hold links to the same rule as news
(issue 12, item 7; core/links.py)."""

from __future__ import annotations

from auth.roles import Role
from core.config import get_settings
from notifications.content import PushSpec
from notifications.payloads import render
from tests.api_clients.helpers import bearer, create_client
from tests.notifications.helpers import notification_body
from tests.support.factories import make_account, make_unit, sign_in
from tests.support.links import SAFE_LINKS, UNSAFE_LINKS
from tests.support.pushes import breaking_news


async def _sender_and_target(client) -> tuple[dict[str, str], dict[str, list[str]]]:  # type: ignore[no-untyped-def]
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    officer = await make_account(role=Role.TASK_OFFICER, unit=unit)
    key = (await create_client(client, await sign_in(client, admin), unit.id))["api_key"]
    return bearer(key), {"users": [str(officer.id)]}


async def test_unsafe_links_are_422_on_the_notifications_route(client):
    headers, audience = await _sender_and_target(client)
    for name, link in UNSAFE_LINKS.items():
        body = notification_body(app="tracking", deep_link=link, audience=audience)
        response = await client.post("/v1/notifications", json=body, headers=headers)
        assert response.status_code == 422, (name, response.text)
        assert [d["loc"][-1] for d in response.json()["error"]["details"]] == ["deep_link"], name


async def test_allowed_links_are_accepted_on_the_notifications_route(client):
    headers, audience = await _sender_and_target(client)
    for name, link in SAFE_LINKS.items():
        body = notification_body(app="tracking", deep_link=link, audience=audience, collapse_key=name)
        response = await client.post("/v1/notifications", json=body, headers=headers)
        assert response.status_code == 202, (name, response.text)
        assert response.json()["deep_link"] == link


def _spec(deep_link: str | None) -> PushSpec:
    return PushSpec(
        id="n-1",
        content=breaking_news(deep_link=deep_link, ttl_seconds=86400),
    )


def test_a_stored_link_that_no_longer_passes_is_left_out_of_the_push(monkeypatch):
    # Rows written before the rule existed, or a host removed from the settings since.
    assert render(_spec("javascript:alert(1)"), "vi").data.get("deep_link") is None
    assert render(_spec("chuong-portal://article/1"), "vi").data["deep_link"] == "chuong-portal://article/1"
    monkeypatch.setattr(get_settings(), "deep_link_hosts", ["tinmoi.vn"])
    assert "deep_link" not in render(_spec("https://dangcongsan.vn/a"), "vi").data
