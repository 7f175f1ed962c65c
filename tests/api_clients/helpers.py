"""Shared steps for the API-client tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

SCOPES = ["notifications:send"]


@asynccontextmanager
async def client_from(app: Any, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose requests arrive from ``ip``."""
    transport = httpx.ASGITransport(app=app, client=(ip, 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def secret_of(key: str) -> str:
    """The secret part of ``chk_<12-char key id>_<secret>`` (the secret itself may hold "_")."""
    return key[len("chk_") + 12 + 1 :]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def create_client(
    http: httpx.AsyncClient, headers: dict[str, str], unit_id: object, **fields: Any
) -> dict[str, Any]:
    body = {"unit_id": str(unit_id), "name": "Cổng thông tin tỉnh", "scopes": SCOPES, **fields}
    response = await http.post("/v1/api-clients", json=body, headers=headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def audit_rows(engine: AsyncEngine, action_prefix: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT action, outcome, object_id, details FROM audit_log WHERE action LIKE :p ORDER BY seq"
            ),
            {"p": f"{action_prefix}%"},
        )
        return [dict(row._mapping) for row in rows]
