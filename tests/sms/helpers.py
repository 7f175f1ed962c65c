"""Accounts, notifications and sink look-ups for the SMS tests."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select, update

from auth.audit.models import AuditLog
from auth.models import Unit, User
from auth.roles import Role
from core import clock
from core.config import get_settings
from core.crypto import encrypt_text
from core.db import transaction
from emulator import Emulator
from notifications import breaker
from notifications.outbox import ClaimedDelivery
from notifications.policy import BROADCAST_KEYS
from notifications.providers.base import Outcome, SendResult
from notifications.sms.models import SmsMessage
from tests.notifications.helpers import release_approved
from tests.support.factories import Account, make_account, sign_in
from workers.inbox_jobs import inbox_fan_out

TEXT = "Bạn có thông báo khẩn trên ứng dụng Chuông. Vui lòng mở ứng dụng."
_phones = itertools.count(901000000)


@dataclass
class Person:
    account: Account
    headers: dict[str, str]
    phone: str | None

    @property
    def id(self) -> uuid.UUID:
        return self.account.id


async def admin_headers(client: httpx.AsyncClient, unit: Unit) -> dict[str, str]:
    return await sign_in(client, await make_account(role=Role.SYSTEM_ADMIN, unit=unit))


async def person(
    client: httpx.AsyncClient, unit: Unit, *, phone: bool = True, signed_in: bool = True
) -> Person:
    account = await make_account(role=Role.MEMBER, unit=unit)
    number = f"+84{next(_phones)}" if phone else None
    if number:
        async with transaction() as session:
            await session.execute(
                update(User).where(User.id == account.id).values(phone_enc=encrypt_text(number))
            )
    headers = await sign_in(client, account) if signed_in else {}
    return Person(account=account, headers=headers, phone=number)


async def notify(
    client: httpx.AsyncClient,
    sender: dict[str, str],
    *,
    audience: dict[str, Any],
    priority: str = "emergency",
    sensitivity: str = "public",
    kind: str = "task.assigned",
    title: str = "Bão số 3 đổ bộ",
    body: str = "Sơ tán ngay khu vực ven biển",
    app: str = "tracking",
) -> uuid.UUID:
    """POST /v1/notifications (broadcasts: the approved news-workflow path, four eyes), then write
    the inbox rows as the worker's job would."""
    request = {
        "app": app,
        "kind": kind,
        "priority": priority,
        "sensitivity": sensitivity,
        "title": {"vi": title},
        "body": {"vi": body},
        "audience": audience,
    }
    if any(audience.get(key) for key in BROADCAST_KEYS):
        notification_id = await release_approved(client, sender, request)
    else:
        response = await client.post("/v1/notifications", json=request, headers=sender)
        assert response.status_code == 202, response.text
        notification_id = str(response.json()["id"])
    await inbox_fan_out({}, notification_id)
    return uuid.UUID(notification_id)


def after_window(extra_seconds: float = 60) -> None:
    clock.advance(get_settings().sms_ack_window_minutes * 60 + extra_seconds)


async def sink(emulator: Emulator, *, to: str | None = None) -> list[dict[str, Any]]:
    """What the SMS gateway sink received, read over its control API."""
    async with httpx.AsyncClient(base_url=emulator.control_url) as http:
        response = await http.get("/sms/messages", params={"to": to} if to else {})
        assert response.status_code == 200, response.text
        return list(response.json()["messages"])


async def ledger(notification_id: uuid.UUID | None = None) -> list[SmsMessage]:
    async with transaction() as session:
        query = select(SmsMessage).order_by(SmsMessage.id)
        if notification_id is not None:
            query = query.where(SmsMessage.notification_id == notification_id)
        return list((await session.execute(query)).scalars())


async def audit_rows(prefix: str) -> list[AuditLog]:
    async with transaction() as session:
        return list(
            (
                await session.execute(
                    select(AuditLog).where(AuditLog.action.startswith(prefix)).order_by(AuditLog.seq)
                )
            ).scalars()
        )


async def open_breaker(provider: str = "fcm", *, errors: int = 60) -> None:
    """A burst of provider errors through the breaker's own counting (default threshold: 50 answers)."""
    results = [
        (
            ClaimedDelivery(
                id=n,
                device_id=uuid.uuid4(),
                provider=provider.split(":")[0],
                language="vi",
                attempts=1,
                token="t",
                apns_environment=provider.split(":")[1] if ":" in provider else None,
            ),
            SendResult(Outcome.RETRY, error_code="UNAVAILABLE"),
        )
        for n in range(errors)
    ]
    assert await breaker.record_outcomes(results) == [provider]
