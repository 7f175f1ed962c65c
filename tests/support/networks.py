"""Helpers of the allowed-networks tests: rules in the settings, clients at chosen addresses,
the audit rows of refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from auth.audit.models import AuditLog
from core.config import get_settings
from core.db import transaction

INSIDE = "10.20.3.4"  # in the agencies' network of these tests, 10.20.0.0/16
OUTSIDE = "203.0.113.10"


def allow(monkeypatch: pytest.MonkeyPatch, rules: dict[str, list[str]]) -> None:
    """CHUONG_ALLOWED_NETWORKS for this test (the values as the settings' validator leaves them)."""
    monkeypatch.setattr(get_settings(), "allowed_networks", rules)


@asynccontextmanager
async def client_at(app: Any, ip: str, *, https: bool = False) -> AsyncIterator[httpx.AsyncClient]:
    """The real app, reached by a peer at ``ip`` (no proxy in between)."""
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    base = "https://testserver" if https else "http://testserver"
    async with httpx.AsyncClient(transport=transport, base_url=base) as http:
        yield http


async def refusals(action: str) -> list[AuditLog]:
    """The audit rows of allowed-networks refusals with this action, oldest first."""
    async with transaction() as session:
        rows = (
            await session.execute(
                select(AuditLog)
                .where(AuditLog.action == action, AuditLog.outcome == "denied")
                .order_by(AuditLog.seq)
            )
        ).scalars()
        return [row for row in rows if row.details.get("reason") == "network_not_allowed"]
