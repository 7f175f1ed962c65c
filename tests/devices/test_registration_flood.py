"""Anonymous registrations: limited per network and globally, recorded on the device row rather
than audited one by one, and purgeable by an operator after a flood (issue 12, item 5)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import text

from auth.roles import Role
from core.config import get_settings
from tests.api_clients.helpers import audit_rows, client_from
from tests.cli.test_admin_create import run_cli
from tests.support.factories import make_account, make_unit, sign_in

REGISTRATIONS = "/v1/devices/anonymous-registrations"


def portal(token: str | None = None) -> dict[str, str]:
    return {"app": "portal", "platform": "android", "token": token or f"fcm-{uuid.uuid4().hex}"}


@pytest.fixture
def limits(monkeypatch):
    settings = get_settings()

    def set_limits(**values: object) -> None:
        for name, value in values.items():
            monkeypatch.setattr(settings, name, value)

    return set_limits


def assert_429(response, code: str = "rate_limited") -> None:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == code and set(error) == {"code", "message", "details", "request_id"}
    assert int(response.headers["Retry-After"]) >= 1


async def test_anonymous_registration_reaches_the_per_address_limit(client, limits):
    """The root cause: no credentials, so the per-address limit was never counted."""
    limits(rate_limit_per_ip="3/minute")
    for _ in range(3):
        assert (await client.post("/v1/devices", json=portal())).status_code == 201
    assert_429(await client.post("/v1/devices", json=portal()))


async def test_anonymous_registrations_are_limited_per_network(app, client, limits):
    limits(device_registration_limit_per_network="3/minute", abuse_strikes=1000)
    for _ in range(2):
        assert (await client.post("/v1/devices", json=portal())).status_code == 201
    proven_body = portal()
    proven = (await client.post("/v1/devices", json=proven_body)).json()
    # Another address of the same /24 (a carrier NAT pool) shares the budget.
    async with client_from(app, "203.0.113.200") as neighbour:
        assert_429(await neighbour.post("/v1/devices", json=portal()))
        # A device credential does not buy new devices past the limit either ...
        credential = {"Authorization": f"Bearer {proven['device_credential']}"}
        assert_429(await neighbour.post("/v1/devices", json=portal(), headers=credential))
        # ... but a device refreshing its own token is no new registration.
        assert (await neighbour.post("/v1/devices", json=proven_body, headers=credential)).status_code == 200
    async with client_from(app, "198.51.100.7") as elsewhere:
        assert (await elsewhere.post("/v1/devices", json=portal())).status_code == 201
    # Signed-in registrations have their own limits (per account, 20 devices per user).
    member = await make_account(role=Role.MEMBER, unit=await make_unit())
    signed = await client.post("/v1/devices", json=portal(), headers=await sign_in(client, member))
    assert signed.status_code == 201


async def test_a_device_refreshing_its_own_token_is_not_counted(client, limits):
    limits(device_registration_limit_per_network="1/minute", abuse_strikes=1000)
    body = portal()
    device = (await client.post("/v1/devices", json=body)).json()
    credential = {"Authorization": f"Bearer {device['device_credential']}"}
    for _ in range(3):
        refreshed = await client.post("/v1/devices", json=body, headers=credential)
        assert refreshed.status_code == 200 and refreshed.json()["id"] == device["id"]
    assert_429(await client.post("/v1/devices", json=portal()))


async def test_ipv6_registrations_are_counted_per_64(app, limits):
    limits(device_registration_limit_per_network="2/minute", abuse_strikes=1000)
    async with (
        client_from(app, "2001:db8:1:2::10") as first,
        client_from(app, "2001:db8:1:2::abcd") as second,
    ):
        assert (await first.post("/v1/devices", json=portal())).status_code == 201
        assert (await second.post("/v1/devices", json=portal())).status_code == 201
        assert_429(await first.post("/v1/devices", json=portal()))
    async with client_from(app, "2001:db8:1:3::10") as other_64:
        assert (await other_64.post("/v1/devices", json=portal())).status_code == 201


async def test_the_global_limit_caps_a_distributed_flood_without_blocking_anyone(app, limits, owner_engine):
    limits(device_registration_limit_global="3/minute", abuse_strikes=2)
    for n in range(3):
        async with client_from(app, f"192.0.2.{n + 1}") as http:
            assert (await http.post("/v1/devices", json=portal())).status_code == 201
    async with client_from(app, "198.51.100.9") as late:
        for _ in range(4):  # past abuse_strikes: still a plain 429, no 15-minute block
            assert_429(await late.post("/v1/devices", json=portal()))
    assert [row["object_id"] for row in await audit_rows(owner_engine, "ratelimit.")] == ["device-reg:all"]


async def test_anonymous_registrations_are_recorded_on_the_device_not_in_the_audit_log(
    app, client, owner_engine
):
    for _ in range(5):
        await client.post("/v1/devices", json=portal())
    async with client_from(app, "2001:db8:aa:bb:1:2:3:4") as v6:
        await v6.post("/v1/devices", json=portal())
    member = await make_account(role=Role.MEMBER, unit=await make_unit())
    await client.post("/v1/devices", json=portal(), headers=await sign_in(client, member))
    async with owner_engine.connect() as conn:
        networks = (
            await conn.execute(
                text("SELECT host(registered_network) || '/' || masklen(registered_network) FROM devices")
            )
        ).scalars()
        assert sorted(networks) == ["2001:db8:aa:bb::/64"] + ["203.0.113.0/24"] * 6
    registered = await audit_rows(owner_engine, "device.registered")
    assert len(registered) == 1  # the signed-in one; anonymous ones are the device rows


async def _backdate(owner_engine, device_ids: list[str], minutes: int) -> None:
    async with owner_engine.begin() as conn:
        await conn.execute(
            text("UPDATE devices SET created_at = now() - make_interval(mins => :m) WHERE id = ANY(:ids)"),
            {"m": minutes, "ids": [uuid.UUID(i) for i in device_ids]},
        )


async def test_operators_see_and_purge_a_flood(app, client, owner_engine):
    unit = await make_unit()
    admin_headers = await sign_in(client, await make_account(role=Role.SYSTEM_ADMIN, unit=unit))
    unit_admin = await sign_in(client, await make_account(role=Role.UNIT_ADMIN, unit=unit))
    async with client_from(app, "198.51.100.23") as flooder:
        flood = [(await flooder.post("/v1/devices", json=portal())).json() for _ in range(6)]
        # One of them is a real reader: it came back with its credential.
        reader = flood.pop()
        credential = {"Authorization": f"Bearer {reader['device_credential']}"}
        assert (await flooder.get("/v1/inbox", headers=credential)).status_code == 200
    old = (await client.post("/v1/devices", json=portal())).json()  # 203.0.113.0/24, long ago
    await _backdate(owner_engine, [old["id"]], 180)
    elsewhere = (await client.post("/v1/devices", json=portal())).json()
    assert elsewhere["id"]

    assert (await client.get(REGISTRATIONS, headers=unit_admin)).status_code == 403
    overview = await client.get(REGISTRATIONS, headers=admin_headers)
    assert overview.status_code == 200, overview.text
    rows = {row["network"]: row for row in overview.json()}
    assert rows["198.51.100.0/24"]["registrations"] == 6 and rows["198.51.100.0/24"]["unproven"] == 5
    assert rows["203.0.113.0/24"]["registrations"] == 1  # the old one is outside the last hour

    now = dt.datetime.now(dt.UTC)
    window = {
        "since": (now - dt.timedelta(minutes=30)).isoformat(),
        "until": (now + dt.timedelta(minutes=1)).isoformat(),
    }
    purge = f"{REGISTRATIONS}/purge"
    assert (
        await client.post(purge, json={"network": "198.51.100.0/24", **window}, headers=unit_admin)
    ).status_code == 403
    dry = await client.post(
        purge, json={"network": "198.51.100.0/24", **window, "dry_run": True}, headers=admin_headers
    )
    assert dry.status_code == 200 and dry.json()["devices"] == 5
    done = await client.post(purge, json={"network": "198.51.0.0/16", **window}, headers=admin_headers)
    assert done.json()["devices"] == 5
    async with owner_engine.connect() as conn:
        left = set((await conn.execute(text("SELECT id::text FROM devices"))).scalars())
    assert left == {reader["id"], old["id"], elsewhere["id"]}
    audited = await audit_rows(owner_engine, "device.flood_purged")
    assert [(r["object_id"], r["details"]["dry_run"], r["details"]["devices"]) for r in audited] == [
        ("198.51.100.0/24", True, 5),
        ("198.51.0.0/16", False, 5),
    ]
    bad = await client.post(
        purge,
        json={"network": "198.51.100.0/24", "since": window["until"], "until": window["since"]},
        headers=admin_headers,
    )
    assert bad.status_code == 422


async def test_the_cli_lists_and_purges_a_flood(app, database_url, owner_engine):
    async with client_from(app, "198.51.100.23") as flooder:
        for _ in range(3):
            assert (await flooder.post("/v1/devices", json=portal())).status_code == 201
    listed = run_cli(database_url, "devices", "registrations", "--since-minutes", "10")
    assert listed.returncode == 0, listed.stderr
    assert "198.51.100.0/24" in listed.stdout
    counted = run_cli(database_url, "devices", "purge", "--network", "198.51.100.0/24")
    assert counted.returncode == 0 and "would purge" in counted.stdout and ": 3 devices" in counted.stdout
    purged = run_cli(database_url, "devices", "purge", "--network", "198.51.100.0/24", "--yes")
    assert purged.returncode == 0, purged.stderr
    async with owner_engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM devices"))).scalar_one() == 0
        actors = (
            await conn.execute(text("SELECT actor_kind FROM audit_log WHERE action = 'device.flood_purged'"))
        ).scalars()
        assert list(actors) == ["system", "system"]
