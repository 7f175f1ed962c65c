"""Shared setup for the audit tests: an admin tree, rows written through the real writer, and
tampering with triggers disabled (the way an attacker with superuser access would)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from auth import audit
from auth.audit.partitions import add_months, month_of
from auth.models import Unit
from auth.roles import Role
from core import clock
from core.db import transaction
from tests.support.factories import Account, make_account, make_unit, sign_in


@dataclass
class Tree:
    """root ── a ── a_child, root ── b; a system admin at root, a unit admin at a and at b."""

    root: Unit
    a: Unit
    a_child: Unit
    b: Unit
    system_admin: Account
    admin_a: Account
    admin_b: Account


async def make_tree() -> Tree:
    root = await make_unit(name="Văn phòng Chính phủ")
    a = await make_unit(parent=root, name="Tỉnh Lào Cai")
    a_child = await make_unit(parent=a, name="Xã Bản Lầu")
    b = await make_unit(parent=root, name="Tỉnh Cà Mau")
    return Tree(
        root=root,
        a=a,
        a_child=a_child,
        b=b,
        system_admin=await make_account(role=Role.SYSTEM_ADMIN, unit=root),
        admin_a=await make_account(role=Role.UNIT_ADMIN, unit=a),
        admin_b=await make_account(role=Role.UNIT_ADMIN, unit=b),
    )


async def write_rows(count: int, **fields: Any) -> None:
    """``count`` rows in one transaction, through the production writer."""
    async with transaction() as session:
        for _ in range(count):
            audit.record(session, **{"action": "test.event", **fields})


async def create_unit_via_api(client: httpx.AsyncClient, headers: dict[str, str], parent: Unit) -> uuid.UUID:
    response = await client.post(
        "/v1/units",
        headers=headers,
        json={
            "parent_id": str(parent.id),
            "code": f"X{uuid.uuid4().hex[:8]}",
            "name": "Sở Nội vụ",
            "kind": "department",
        },
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def populate_via_api(client: httpx.AsyncClient, tree: Tree) -> dict[str, str]:
    """Real traffic: sign-ins, units created, a failed sign-in. Returns the system admin's headers."""
    headers = await sign_in(client, tree.system_admin)
    await create_unit_via_api(client, headers, tree.a)
    admin_headers = await sign_in(client, tree.admin_b)
    await create_unit_via_api(client, admin_headers, tree.b)
    response = await client.post(
        "/v1/auth/login", json={"username": "nobody", "password": "wrong password 1"}
    )
    assert response.status_code == 401
    return headers


async def tamper(owner_engine: AsyncEngine, sql: str, **params: Any) -> None:
    """Run ``sql`` as the superuser with triggers off for this transaction only."""
    async with owner_engine.begin() as conn:
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(text(sql), params)


async def head_seq(owner_engine: AsyncEngine) -> int:
    async with owner_engine.connect() as conn:
        return int((await conn.execute(text("SELECT coalesce(max(seq), 0) FROM audit_log"))).scalar_one())


# --- partitions, archives and keys ----------------------------------------------------------


def set_clock(moment: dt.datetime) -> None:
    """Move the service's clock (core/clock.py) so that it reads ``moment`` now."""
    clock.reset()
    clock.advance((moment - clock.utcnow()).total_seconds())


def months_ago(count: int, *, day: int = 10) -> dt.datetime:
    """Noon UTC on ``day`` of the month ``count`` months before the current one."""
    month = add_months(month_of(dt.datetime.now(dt.UTC)), -count)
    return dt.datetime(month.year, month.month, day, 12, tzinfo=dt.UTC)


async def rows_by_partition(owner_engine: AsyncEngine) -> dict[str, list[int]]:
    """The seqs stored in each partition."""
    async with owner_engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT tableoid::regclass::text, array_agg(seq ORDER BY seq) FROM audit_log GROUP BY 1")
        )
        return {name: list(seqs) for name, seqs in rows}


def partition_name(moment: dt.datetime) -> str:
    return f"audit_log_p{moment:%Y_%m}"
