"""Migration 0011 turns the existing audit log into a partitioned one without losing a row or
changing a hash: rows keep their seq order and hashes, get the key id "default" and a
``chained_at`` that never goes back (the latest ``occurred_at`` so far), land in the partitions
of their months, and the chain verifies with the application's role. Downgrade restores the plain
table, and refuses when the previous release could not verify what it would get."""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

import asyncpg
import pytest
from alembic.util.exc import CommandError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from auth.audit.chain import chain_hash
from auth.audit.models import GENESIS_HASH
from auth.audit.partitions import add_months, month_of
from auth.audit.verify import verify_chain
from tests.notifications.test_batch_migration import _migrate

UTC = dt.UTC
# occurred_at in seq order; the third committed after the second but happened before it.
OCCURRED = [
    dt.datetime(2025, 1, 15, 8, tzinfo=UTC),
    dt.datetime(2025, 2, 3, 9, tzinfo=UTC),
    dt.datetime(2025, 1, 31, 23, 59, tzinfo=UTC),
    dt.datetime(2025, 3, 1, 0, 0, 1, tzinfo=UTC),
]


def legacy_rows() -> list[dict[str, Any]]:
    """Rows as the previous release chained them, with CHUONG_AUDIT_HMAC_KEY."""
    key = os.environ["CHUONG_AUDIT_HMAC_KEY"].encode()
    rows, prev = [], GENESIS_HASH
    for seq, occurred_at in enumerate(OCCURRED, start=1):
        row: dict[str, Any] = {
            "seq": seq,
            "occurred_at": occurred_at,
            "actor_kind": "system",
            "actor_id": None,
            "on_behalf_of_id": None,
            "unit_id": None,
            "action": "test.legacy",
            "object_type": None,
            "object_id": str(seq),
            "outcome": "success",
            "request_id": None,
            "ip": None,
            "user_agent": None,
            "details": {"n": seq},
        }
        row["prev_hash"], row["hash"] = prev, chain_hash(prev, row, key=key)
        prev = row["hash"]
        rows.append(row)
    return rows


async def insert_legacy(dsn: str, rows: list[dict[str, Any]]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for row in rows:
            await conn.execute(
                "INSERT INTO audit_log (seq, occurred_at, actor_kind, action, object_id, outcome, details,"
                " prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                row["seq"],
                row["occurred_at"],
                row["actor_kind"],
                row["action"],
                row["object_id"],
                row["outcome"],
                json.dumps(row["details"]),
                row["prev_hash"],
                row["hash"],
            )
    finally:
        await conn.close()


async def verify_as_app(app_url: str):
    engine = create_async_engine(app_url)
    try:
        async with async_sessionmaker(engine)() as session:
            return await verify_chain(session)
    finally:
        await engine.dispose()


async def test_existing_rows_are_partitioned_with_their_hashes_and_downgrade_restores_them(databases):
    name = await databases.create_copy()
    url = databases.owner_url(name)
    dsn = url.replace("postgresql+asyncpg", "postgresql")
    rows = legacy_rows()
    try:
        await _migrate(url, "downgrade", "0010")
        await insert_legacy(dsn, rows)
        await _migrate(url, "upgrade", "head")

        conn = await asyncpg.connect(dsn)
        try:
            stored = await conn.fetch(
                "SELECT seq, prev_hash, hash, key_id, chained_at, tableoid::regclass::text AS partition"
                " FROM audit_log ORDER BY seq"
            )
            assert [(r["seq"], r["prev_hash"], r["hash"]) for r in stored] == [
                (r["seq"], r["prev_hash"], r["hash"]) for r in rows
            ]
            assert {r["key_id"] for r in stored} == {"default"}
            assert [r["chained_at"] for r in stored] == [OCCURRED[0], OCCURRED[1], OCCURRED[1], OCCURRED[3]]
            assert [r["partition"] for r in stored] == [
                "audit_log_p2025_01",
                "audit_log_p2025_02",
                "audit_log_p2025_02",
                "audit_log_p2025_03",
            ]
            last = f"audit_log_p{add_months(month_of(dt.datetime.now(UTC)), 3):%Y_%m}"
            partitions = {
                r["relname"]
                for r in await conn.fetch(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                    " WHERE i.inhparent = 'audit_log'::regclass"
                )
            }
            assert {"audit_log_default", "audit_log_p2025_01", "audit_log_p2025_06", last} <= partitions
            for partition in ("audit_log_p2025_01", "audit_log_default"):
                granted = await conn.fetchval(
                    "SELECT array_agg(p ORDER BY p) FROM unnest(ARRAY['SELECT','INSERT','UPDATE','DELETE',"
                    "'TRUNCATE']) p WHERE has_table_privilege('chuong_app', $1, p)",
                    partition,
                )
                assert granted == ["INSERT", "SELECT"]
        finally:
            await conn.close()
        result = await verify_as_app(databases.app_url(name))
        assert result.ok and result.rows_checked == 4, result.message

        await _migrate(url, "downgrade", "0010")
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT relkind FROM pg_class WHERE relname = 'audit_log'") == b"r"
            back = await conn.fetch("SELECT seq, hash FROM audit_log ORDER BY seq")
            assert [(r["seq"], r["hash"]) for r in back] == [(r["seq"], r["hash"]) for r in rows]
            assert await conn.fetchval("SELECT to_regclass('audit_archives')") is None
        finally:
            await conn.close()
        await _migrate(url, "upgrade", "head")
        assert (await verify_as_app(databases.app_url(name))).ok
    finally:
        await databases.drop(name)


async def test_downgrade_refuses_rows_the_previous_release_could_not_verify(databases):
    name = await databases.create_copy()
    url = databases.owner_url(name)
    dsn = url.replace("postgresql+asyncpg", "postgresql")
    try:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "INSERT INTO audit_log (seq, occurred_at, actor_kind, action, outcome, details, prev_hash,"
                " hash, key_id) VALUES (1, now(), 'system', 'x', 'success', '{}', $1, 'h', '2027')",
                GENESIS_HASH,
            )
        finally:
            await conn.close()
        with pytest.raises((DBAPIError, CommandError), match="rotated keys"):
            await _migrate(url, "downgrade", "0010")
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT relkind FROM pg_class WHERE relname = 'audit_log'") == b"p"
        finally:
            await conn.close()
    finally:
        await databases.drop(name)
