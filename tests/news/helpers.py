from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx

from auth.models import Unit
from auth.roles import Role
from core.db import transaction
from news.models import NewsItem
from tests.notifications.conftest import register_devices
from tests.support.factories import Account, make_account, make_unit, sign_in


@dataclass
class Desk:
    """One component portal's editorial board: reporter, editor, two publishers."""

    unit: Unit
    reporter: Account
    editor: Account
    publisher: Account
    other_publisher: Account
    headers: dict[str, dict[str, str]]


async def make_desk(client: httpx.AsyncClient, *, parent: Unit | None = None) -> Desk:
    unit = await make_unit(parent=parent)
    accounts = {
        "reporter": await make_account(role=Role.REPORTER, unit=unit),
        "editor": await make_account(role=Role.EDITOR, unit=unit),
        "publisher": await make_account(role=Role.PUBLISHER, unit=unit),
        "other_publisher": await make_account(role=Role.PUBLISHER, unit=unit),
    }
    headers = {name: await sign_in(client, account) for name, account in accounts.items()}
    return Desk(unit=unit, headers=headers, **accounts)


def draft(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "article_id": f"art-{uuid.uuid4().hex[:8]}",
        "deep_link": "chuong-portal://article/123",
        "title": {"vi": "Tin đặc biệt quan trọng", "en": "Breaking news"},
        "body": {"vi": "Nội dung bản tin", "en": "Story body"},
        "audience": {"all_readers": True},
    }
    body.update(overrides)
    return body


async def create(client: httpx.AsyncClient, headers: dict[str, str], **overrides: object) -> dict:
    response = await client.post("/v1/news", json=draft(**overrides), headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def submitted(client: httpx.AsyncClient, desk: Desk, **overrides: object) -> str:
    item = await create(client, desk.headers["reporter"], **overrides)
    response = await client.post(f"/v1/news/{item['id']}/submit", headers=desk.headers["editor"], json={})
    assert response.status_code == 200, response.text
    return str(item["id"])


async def approve(client: httpx.AsyncClient, desk: Desk, item_id: str, **body: object) -> httpx.Response:
    return await client.post(f"/v1/news/{item_id}/approve", headers=desk.headers["publisher"], json=body)


async def readers(
    specs: list[tuple[str, str, str]],
    *,
    topics: list[str] | None = None,
    province: str | None = None,
    app_version: str | None = None,
) -> list[uuid.UUID]:
    """(provider, token, locale) → anonymous portal devices."""
    return await register_devices(specs, topics=topics, province=province, app_version=app_version)


def fcm(n: int, locale: str = "vi", prefix: str = "ok") -> list[tuple[str, str, str]]:
    return [("fcm", f"{prefix}-{uuid.uuid4().hex}", locale) for _ in range(n)]


def apns(n: int, locale: str = "vi") -> list[tuple[str, str, str]]:
    return [("apns", uuid.uuid4().hex * 2, locale) for _ in range(n)]


async def news_item(item_id: str | uuid.UUID) -> NewsItem:
    async with transaction() as session:
        item = await session.get(NewsItem, uuid.UUID(str(item_id)))
        assert item is not None
        return item
