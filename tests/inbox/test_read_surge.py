"""The read surge after a push (issue 16): a device's unread count and first page take one Redis
round trip for both rate limits and run outside a transaction, without weakening the checks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import event, text

from auth.roles import Role
from core import db
from core.config import get_settings
from core.db import get_engine
from core.redis import configure_redis
from tests.inbox.helpers import anonymous_device, signed_in
from tests.support.factories import make_unit

READS = ("/v1/inbox/unread-count", "/v1/inbox?limit=20")


class CountingRedis(Redis):
    """The real client, noting each command it sends (one command is one round trip here)."""

    commands: list[str]

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands.append(str(args[0]))
        return await super().execute_command(*args, **options)


@pytest.fixture
def statements() -> Iterator[list[tuple[str, bool]]]:
    """Every statement the app's engine runs: its text and whether it ran outside a transaction."""
    seen: list[tuple[str, bool]] = []

    def note(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append((statement, bool(conn.connection.dbapi_connection.autocommit)))

    engine = get_engine().sync_engine
    event.listen(engine, "before_cursor_execute", note)
    yield seen
    event.remove(engine, "before_cursor_execute", note)


@pytest.mark.parametrize("path", READS)
async def test_a_device_reads_outside_a_transaction_with_one_redis_call(client, redis, statements, path):
    device = await anonymous_device(client, topics=["t1"])
    counting = CountingRedis.from_url(os.environ["CHUONG_REDIS_URL"], decode_responses=True)
    counting.commands = []
    configure_redis(counting)
    try:
        # The first call on a new client may find the script unknown to Redis and load it.
        assert (await client.get(path, headers=device.headers)).status_code == 200
        counting.commands.clear()
        statements.clear()
        response = await client.get(path, headers=device.headers)
        assert response.status_code == 200, response.text
        # Both rate limits (address and device) in one script call; nothing else.
        assert counting.commands == ["EVALSHA"], counting.commands
    finally:
        configure_redis(redis)
        await counting.aclose()
    assert statements, "the request ran no statement"
    assert all(autocommit for _, autocommit in statements), statements
    # The credential's device row, then the inbox's own statements (markers and page, or count).
    assert len(statements) <= 4, [s for s, _ in statements]


async def test_signed_in_readers_keep_their_transaction(client, redis, statements):
    reader = await signed_in(client, unit=await make_unit(), role=Role.MEMBER)
    statements.clear()
    response = await client.get("/v1/inbox/unread-count", headers=reader.headers)
    assert response.status_code == 200, response.text
    assert statements and not any(autocommit for _, autocommit in statements), statements


async def test_writes_of_a_device_keep_their_transaction(client, redis, statements):
    device = await anonymous_device(client)
    statements.clear()
    response = await client.post("/v1/inbox/read-all", headers=device.headers)
    assert response.status_code == 200, response.text
    assert statements and not any(autocommit for _, autocommit in statements), statements


async def test_a_retired_credential_is_refused_on_the_read_path(client, redis):
    device = await anonymous_device(client)
    assert (await client.get(READS[0], headers=device.headers)).status_code == 200
    assert (await client.delete(f"/v1/devices/{device.reader_id}", headers=device.headers)).status_code == 204
    for path in READS:
        response = await client.get(path, headers=device.headers)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "invalid_device_credential"


async def test_refused_credentials_still_count_against_the_address(client, redis, monkeypatch):
    monkeypatch.setattr(get_settings(), "rate_limit_per_ip", "3/minute")
    device = await anonymous_device(client)  # one request from the address
    forged = {"Authorization": device.headers["Authorization"][:-4] + "AAAA"}
    assert (await client.get(READS[0], headers=forged)).status_code == 401
    assert (await client.get(READS[0], headers=forged)).status_code == 401
    limited = await client.get(READS[0], headers=forged)
    assert limited.status_code == 429, limited.text
    # The valid credential from the same address is limited too: the address count comes first.
    assert (await client.get(READS[0], headers=device.headers)).status_code == 429


async def test_the_device_limit_holds_on_the_read_path(client, redis, monkeypatch):
    device = await anonymous_device(client)
    monkeypatch.setattr(get_settings(), "rate_limit_per_client", "2/minute")
    monkeypatch.setattr(get_settings(), "abuse_strikes", 1000)
    assert (await client.get(READS[0], headers=device.headers)).status_code == 200
    assert (await client.get(READS[1], headers=device.headers)).status_code == 200
    limited = await client.get(READS[0], headers=device.headers)
    assert limited.status_code == 429, limited.text
    assert 1 <= int(limited.headers["Retry-After"]) <= 60


async def test_a_connection_dropped_while_idle_is_replaced(client, redis, owner_engine, monkeypatch):
    device = await anonymous_device(client)
    assert (await client.get(READS[0], headers=device.headers)).status_code == 200
    # Every pooled connection counts as idle now; the server ends them all behind the pool's back.
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
    async with owner_engine.connect() as conn:
        ended = await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND usename <> current_user"
            )
        )
        assert any(ended.scalars()), "no pooled connection to end"
    response = await client.get(READS[0], headers=device.headers)
    assert response.status_code == 200, response.text
