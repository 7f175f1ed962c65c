"""Rate limits per account, API client and client IP, and the automatic block on bursts (D-41)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from auth import ratelimit
from auth.roles import Role
from core.config import get_settings
from core.redis import configure_redis
from tests.api_clients.helpers import audit_rows, bearer, client_from, create_client
from tests.support.factories import make_account, make_unit, sign_in

ME = "/v1/auth/me"


@pytest.fixture
def limits(monkeypatch):
    """Set limits for this test; settings are read at call time, so patching the cached object
    is enough."""
    settings = get_settings()

    def set_limits(**values: object) -> None:
        for name, value in values.items():
            monkeypatch.setattr(settings, name, value)

    return set_limits


@pytest.fixture
async def member(client):
    account = await make_account(role=Role.MEMBER, unit=await make_unit())
    return account, await sign_in(client, account)


def assert_rate_limited(response, code: str = "rate_limited", max_retry_after: int = 60) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == code
    assert 1 <= int(response.headers["Retry-After"]) <= max_retry_after


async def test_per_account_limit_answers_429_with_retry_after(client, member, limits):
    limits(rate_limit_per_account="3/minute")
    _, headers = member
    for _ in range(3):
        assert (await client.get(ME, headers=headers)).status_code == 200
    assert_rate_limited(await client.get(ME, headers=headers))


async def test_per_account_limit_holds_when_the_address_changes(app, client, member, limits):
    limits(rate_limit_per_account="2/minute")
    _, headers = member
    async with client_from(app, "198.51.100.7") as other, client_from(app, "192.0.2.44") as third:
        assert (await client.get(ME, headers=headers)).status_code == 200
        assert (await other.get(ME, headers=headers)).status_code == 200
        assert_rate_limited(await third.get(ME, headers=headers))


async def test_per_ip_limit_counts_every_account_from_that_address(app, client, limits):
    # 5: the two sign-ins below are requests from the address too (every route is counted).
    limits(rate_limit_per_ip="5/minute")
    unit = await make_unit()
    first, second = [await make_account(role=Role.MEMBER, unit=unit) for _ in range(2)]
    headers_1, headers_2 = await sign_in(client, first), await sign_in(client, second)
    assert (await client.get(ME, headers=headers_1)).status_code == 200
    assert (await client.get(ME, headers=headers_2)).status_code == 200
    assert (await client.get(ME, headers=headers_1)).status_code == 200
    assert_rate_limited(await client.get(ME, headers=headers_2))
    # Unauthenticated callers are counted too: the IP limit runs before the token is read.
    assert_rate_limited(await client.get(ME))
    async with client_from(app, "198.51.100.7") as elsewhere:
        assert (await elsewhere.get(ME, headers=headers_1)).status_code == 200


async def test_login_is_limited_per_ip(app, client, limits):
    limits(rate_limit_login_per_ip="2/minute")
    body = {"username": "nobody", "password": "wrong password here"}
    assert (await client.post("/v1/auth/login", json=body)).status_code == 401
    assert (await client.post("/v1/auth/login", json=body)).status_code == 401
    assert_rate_limited(await client.post("/v1/auth/login", json=body))
    assert_rate_limited(await client.post("/v1/auth/refresh", json={"refresh_token": "x"}))
    async with client_from(app, "198.51.100.7") as elsewhere:
        assert (await elsewhere.post("/v1/auth/login", json=body)).status_code == 401


async def test_per_client_limit(client, limits):
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    created = await create_client(client, await sign_in(client, admin), unit.id)
    limits(rate_limit_per_client="2/minute")
    key_headers = bearer(created["api_key"])
    for _ in range(2):
        assert (await client.get("/v1/api-clients/me", headers=key_headers)).status_code == 200
    assert_rate_limited(await client.get("/v1/api-clients/me", headers=key_headers))


async def test_abnormal_burst_blocks_temporarily_and_is_audited_once(
    client, member, limits, redis, owner_engine
):
    limits(rate_limit_per_account="2/minute", abuse_strikes=3, abuse_block_seconds=600)
    account, headers = member
    codes = [(await client.get(ME, headers=headers)).status_code for _ in range(2)]
    assert codes == [200, 200]
    assert_rate_limited(await client.get(ME, headers=headers))
    assert_rate_limited(await client.get(ME, headers=headers))
    # The third rejection within the window turns into a block.
    assert_rate_limited(await client.get(ME, headers=headers), "temporarily_blocked", 600)
    blocked = await client.get(ME, headers=headers)
    assert_rate_limited(blocked, "temporarily_blocked", 600)
    assert int(blocked.headers["Retry-After"]) > 590

    # While blocked, the limiter is not even consulted: freeing its counters changes nothing.
    for key in await redis.keys(f"{ratelimit.LIMITS_PREFIX}*"):
        await redis.delete(key)
    assert_rate_limited(await client.get(ME, headers=headers), "temporarily_blocked", 600)

    rows = await audit_rows(owner_engine, "ratelimit.blocked")
    assert len(rows) == 1
    assert rows[0]["object_id"] == f"account:{account.id}"
    assert rows[0]["outcome"] == "denied"
    assert rows[0]["details"]["block_seconds"] == 600

    # When the block ends, the account is served again.
    await redis.delete(f"{ratelimit.BLOCK_PREFIX}account:{account.id}")
    assert (await client.get(ME, headers=headers)).status_code == 200


async def test_limits_fail_open_when_redis_is_down(client, member, limits, redis):
    limits(rate_limit_per_account="1/minute", rate_limit_per_ip="1/minute")
    _, headers = member
    dead = Redis.from_url("redis://127.0.0.1:1/0", decode_responses=True)
    configure_redis(dead)
    try:
        for _ in range(3):
            assert (await client.get(ME, headers=headers)).status_code == 200
    finally:
        configure_redis(redis)
        await dead.aclose()
