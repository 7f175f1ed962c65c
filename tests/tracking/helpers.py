"""Shared steps of the tracking tests."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select, text

from auth.models import Unit
from auth.roles import Role
from core import clock
from core.after_commit import committing
from core.db import transaction
from core.workcalendar import TIMEZONE
from notifications.models import Notification
from tests.support.factories import Account, make_account, make_unit, sign_in
from tracking import sender
from tracking.calendar import load_calendar
from tracking.models import Reminder
from tracking.rules import get_rules
from tracking.sweep import SweepResult, sweep


def set_clock(local: str) -> dt.datetime:
    """Move the service clock to ``local`` (Asia/Ho_Chi_Minh wall time); returns it in UTC."""
    target = dt.datetime.fromisoformat(local).replace(tzinfo=TIMEZONE)
    clock.advance((target - clock.utcnow()).total_seconds())
    return target.astimezone(dt.UTC)


@dataclass
class Org:
    central: Unit
    province: Unit
    admin: Account
    officer: Account
    officer2: Account
    leader: Account
    approver: Account
    central_leader: Account
    key: str  # API key with tracking:write, of the central unit

    @property
    def system(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def make_api_client(client: httpx.AsyncClient, admin: Account, unit: Unit, scopes: list[str]) -> str:
    headers = await sign_in(client, admin)
    response = await client.post(
        "/v1/api-clients",
        json={"unit_id": str(unit.id), "name": "Hệ thống theo dõi nhiệm vụ", "scopes": scopes},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    key: str = response.json()["api_key"]
    return key


async def make_org(client: httpx.AsyncClient) -> Org:
    central = await make_unit(name="Văn phòng Trung ương")
    province = await make_unit(parent=central, name="Tỉnh ủy")
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=central)
    return Org(
        central=central,
        province=province,
        admin=admin,
        officer=await make_account(role=Role.TASK_OFFICER, unit=province),
        officer2=await make_account(role=Role.TASK_OFFICER, unit=province),
        leader=await make_account(role=Role.LEADER, unit=province),
        approver=await make_account(role=Role.TASK_APPROVER, unit=central),
        central_leader=await make_account(role=Role.LEADER, unit=central),
        key=await make_api_client(client, admin, central, ["tracking:write"]),
    )


def task(org: Org, code: str | None = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": code or f"T{uuid.uuid4().hex[:10]}_TBKL",
        "version": 1,
        "name": "Triển khai Nghị quyết 57 về khoa học công nghệ",
        "group_code": "57_N02",
        "lead_unit": org.province.code,
        "responsible_users": [org.officer.username],
        "deadline": "2026-12-31",
        "priority": 3,
        "result_status": "in_progress",
    }
    body.update(fields)
    return body


async def upsert(client: httpx.AsyncClient, org: Org, *tasks: dict[str, Any]) -> httpx.Response:
    return await client.put("/v1/tracking/tasks", json={"tasks": list(tasks)}, headers=org.system)


async def confirm_all() -> None:
    """Mark every task confirmed, so that tests about deadlines see no confirm-window reminders."""
    async with transaction() as session:
        await session.execute(text("UPDATE tracking_tasks SET confirmed_at = received_at"))


async def run_sweep() -> SweepResult:
    async with committing() as session:
        calendar = await load_calendar(session)
        return await sweep(session, now=clock.utcnow(), calendar=calendar, rules=get_rules())


async def run_sender(limit: int = 500) -> int:
    total = 0
    while True:
        async with committing() as session:
            claimed = await sender.send_pending(session, now=clock.utcnow(), rules=get_rules(), limit=limit)
        total += claimed
        if claimed == 0:
            return total


async def tick() -> list[Reminder]:
    """One sweep and its sender; returns the ledger rows sent by it."""
    async with transaction() as session:
        before = (
            await session.execute(select(Reminder.id).order_by(Reminder.id.desc()).limit(1))
        ).scalar() or 0
    await run_sweep()
    await run_sender()
    async with transaction() as session:
        rows = await session.execute(select(Reminder).where(Reminder.id > before).order_by(Reminder.id))
        return list(rows.scalars())


async def ledger() -> list[Reminder]:
    async with transaction() as session:
        return list((await session.execute(select(Reminder).order_by(Reminder.id))).scalars())


async def tracking_notifications() -> list[Notification]:
    async with transaction() as session:
        rows = await session.execute(
            select(Notification).where(Notification.app == "tracking").order_by(Notification.created_at)
        )
        return list(rows.scalars())


def occurrences(rows: list[Reminder]) -> list[str]:
    return sorted(f"{r.rule}:{r.occurrence.split(':')[0]}" for r in rows)


async def concurrently(*coroutines: Any) -> list[Any]:
    return list(await asyncio.gather(*coroutines))
