"""Readers and notifications for inbox tests."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import insert

from auth.models import Unit
from auth.roles import Role
from core import clock
from core.db import transaction
from inbox.models import InboxItem
from notifications.models import Notification
from notifications.policy import BROADCAST_KEYS
from tests.notifications.helpers import release_approved
from tests.support.factories import Account, make_account, sign_in
from workers.inbox_jobs import inbox_fan_out


@dataclass
class Caller:
    headers: dict[str, str]
    reader_id: uuid.UUID
    account: Account | None = None


async def anonymous_device(
    client: httpx.AsyncClient, *, locale: str = "vi", topics: list[str] | None = None
) -> Caller:
    response = await client.post(
        "/v1/devices",
        json={
            "app": "portal",
            "platform": "android",
            "token": f"fcm-{uuid.uuid4().hex}",
            "locale": locale,
            "topics": topics or [],
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Caller(
        headers={"Authorization": f"Bearer {body['device_credential']}"}, reader_id=uuid.UUID(body["id"])
    )


async def signed_in(
    client: httpx.AsyncClient,
    *,
    unit: Unit,
    role: Role = Role.MEMBER,
    portal_locale: str | None = "vi",
    topics: list[str] | None = None,
) -> Caller:
    """A signed-in user, with a portal device (so portal broadcasts reach their inbox) unless
    ``portal_locale`` is None."""
    account = await make_account(role=role, unit=unit)
    headers = await sign_in(client, account)
    if portal_locale is not None:
        response = await client.post(
            "/v1/devices",
            json={
                "app": "portal",
                "platform": "ios",
                "token": uuid.uuid4().hex * 2,
                "locale": portal_locale,
                "topics": topics or [],
            },
            headers=headers,
        )
        assert response.status_code == 201, response.text
    return Caller(headers=headers, reader_id=account.id, account=account)


async def send(client: httpx.AsyncClient, sender: dict[str, str], **overrides: Any) -> str:
    """POST /v1/notifications, then run the inbox fan-out job as a worker would."""
    body: dict[str, Any] = {
        "app": "portal",
        "kind": "breaking_news",
        "title": {"vi": "Tin mới", "en": "News"},
        "body": {"vi": "Nội dung", "en": "Body"},
        "data": {"article_id": "a-1"},
        "deep_link": "chuong-portal://article/a-1",
        "audience": {"all": True},
    }
    body.update(overrides)
    if any(body["audience"].get(key) for key in BROADCAST_KEYS):
        # Broadcasts are the news workflow's to release (four eyes), not the public route's.
        notification_id = await release_approved(client, sender, body)
    else:
        response = await client.post("/v1/notifications", json=body, headers=sender)
        assert response.status_code == 202, response.text
        notification_id = str(response.json()["id"])
    await inbox_fan_out({}, notification_id)
    return notification_id


async def insert_notification(
    *,
    audience: dict[str, Any],
    readers: list[uuid.UUID] = (),  # type: ignore[assignment]
    created_at: dt.datetime | None = None,
    app: str = "portal",
) -> uuid.UUID:
    """A notification row (and per-recipient rows) written directly, for volume and timing tests."""
    full = {"all": False, "users": [], "units": [], "roles": [], "devices": [], "topics": []} | audience
    created_at = created_at or clock.utcnow()
    notification_id = uuid.uuid4()
    async with transaction() as session:
        await session.execute(
            insert(Notification).values(
                id=notification_id,
                app=app,
                kind="breaking_news",
                priority="normal",
                sensitivity="public",
                title={"vi": f"Tin {notification_id.hex[:6]}"},
                body={"vi": "Nội dung"},
                ttl_seconds=3600,
                audience=full,
                created_by_kind="user",
                created_by_id=uuid.uuid4(),
                status="completed",
                created_at=created_at,
                expires_at=created_at + dt.timedelta(hours=1),
            )
        )
        if readers:
            await session.execute(
                insert(InboxItem).values(
                    [
                        {
                            "reader_id": r,
                            "notification_id": notification_id,
                            "app": app,
                            "created_at": created_at,
                        }
                        for r in readers
                    ]
                )
            )
    return notification_id


async def all_ids(client: httpx.AsyncClient, caller: Caller, *, limit: int = 7, **params: Any) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        query = {"limit": limit, **params} | ({"cursor": cursor} if cursor else {})
        response = await client.get("/v1/inbox", params=query, headers=caller.headers)
        assert response.status_code == 200, response.text
        ids += [item["id"] for item in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return ids


async def unread(client: httpx.AsyncClient, caller: Caller, **params: Any) -> int:
    response = await client.get("/v1/inbox/unread-count", params=params, headers=caller.headers)
    assert response.status_code == 200, response.text
    return int(response.json()["unread"])
