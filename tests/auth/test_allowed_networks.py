"""Allowed networks (auth/networks.py, api/deps.py): a permission's requests or a role's sign-ins
and requests only from the listed address ranges, refused elsewhere with 403
``network_not_allowed`` and an audit row; the address is the one api/client_ip.py settles on."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest
from pydantic import ValidationError

from api import client_ip
from auth import networks
from auth.roles import Permission, Role
from core import clock
from core.config import Settings, get_settings
from tests.support.factories import make_account, make_unit, sign_in
from tests.support.live_server import serve
from tests.support.networks import INSIDE, OUTSIDE, allow, client_at, refusals

AGENCIES = ["10.20.0.0/16", "2001:db8:20::/48"]


async def test_a_permission_rule_holds_only_that_permission_to_its_networks(app, monkeypatch):
    allow(monkeypatch, {"users:write": AGENCIES})
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    member = await make_account(role=Role.MEMBER, unit=unit)
    async with client_at(app, OUTSIDE) as outside, client_at(app, INSIDE) as inside:
        # Signing in and reading stay open: the rule is on users:write only.
        headers = await sign_in(outside, admin)
        assert (await outside.get("/v1/users", headers=headers)).status_code == 200

        refused = await outside.post(f"/v1/users/{member.id}/disable", headers=headers)
        assert refused.status_code == 403
        error = refused.json()["error"]
        assert error["code"] == "network_not_allowed"
        assert error["details"] == [{"rule": "users:write", "address": OUTSIDE}]
        assert "10.20" not in refused.text  # the allowed ranges are not told

        # The same session, from inside the agencies' network.
        allowed = await inside.post(f"/v1/users/{member.id}/disable", headers=headers)
        assert allowed.status_code == 200, allowed.text
        assert allowed.json()["is_active"] is False

    [row] = await refusals("permission.denied")
    assert row.actor_id == admin.id and row.ip == OUTSIDE
    assert row.object_id == f"POST /v1/users/{member.id}/disable"
    assert row.details["rule"] == "users:write"


async def test_a_role_rule_keeps_the_account_itself_inside(app, monkeypatch):
    allow(monkeypatch, {"system_admin": AGENCIES})
    unit = await make_unit()
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=unit)
    reader = await make_account(role=Role.MEMBER, unit=unit)
    async with client_at(app, OUTSIDE) as outside, client_at(app, INSIDE) as inside:
        body = {"username": admin.username, "password": admin.password, "totp_code": admin.code()}
        refused = await outside.post("/v1/auth/login", json=body)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "network_not_allowed"
        # A wrong password is the usual 401: the refusal tells nothing to whoever lacks it.
        wrong = await outside.post("/v1/auth/login", json={**body, "password": "not-the-password"})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "invalid_credentials"
        # Other roles are not held.
        await sign_in(outside, reader)

        signed_in = await inside.post("/v1/auth/login", json={**body, "totp_code": admin.code()})
        assert signed_in.status_code == 200, signed_in.text
        tokens = signed_in.json()
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert (await inside.get("/v1/auth/me", headers=headers)).status_code == 200
        # Its tokens carried outside: every request, and the refresh, are refused.
        me = await outside.get("/v1/auth/me", headers=headers)
        assert me.status_code == 403 and me.json()["error"]["code"] == "network_not_allowed"
        refresh = await outside.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert refresh.status_code == 403 and refresh.json()["error"]["code"] == "network_not_allowed"
        # The refused refresh consumed nothing: inside, the same token still rotates.
        again = await inside.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert again.status_code == 200, again.text

    [login] = await refusals("auth.login_failed")
    assert login.actor_id == admin.id and login.ip == OUTSIDE and login.details["rule"] == "system_admin"
    [refresh_row] = await refusals("auth.refresh_failed")
    assert refresh_row.actor_id == admin.id
    [request_row] = await refusals("permission.denied")
    assert request_row.object_id == "GET /v1/auth/me"


async def test_a_held_account_can_still_end_its_sessions_from_outside(app, monkeypatch):
    # Signing out only takes power away: a leader off the VPN (a stolen laptop, a hotel) must be
    # able to end a session, one of the others, or all of them; nothing else goes through.
    allow(monkeypatch, {"leader": AGENCIES})
    unit = await make_unit()
    leader = await make_account(role=Role.LEADER, unit=unit)
    async with client_at(app, INSIDE) as inside, client_at(app, OUTSIDE) as outside:
        laptop = await sign_in(inside, leader)
        phone = await sign_in(inside, leader)
        tablet = await sign_in(inside, leader)
        listed = await inside.get("/v1/auth/sessions", headers=laptop)
        assert listed.status_code == 200 and len(listed.json()) == 3, listed.text
        # Reading the sessions stays held: it shows addresses and devices.
        refused = await outside.get("/v1/auth/sessions", headers=laptop)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "network_not_allowed"
        assert (await outside.get("/v1/auth/me", headers=laptop)).status_code == 403

        assert (await outside.post("/v1/auth/logout", headers=laptop)).status_code == 204
        assert (await inside.get("/v1/auth/me", headers=laptop)).status_code == 401
        [phone_session] = [
            s["id"] for s in (await inside.get("/v1/auth/sessions", headers=phone)).json() if s["current"]
        ]
        ended = await outside.delete(f"/v1/auth/sessions/{phone_session}", headers=tablet)
        assert ended.status_code == 204, ended.text
        assert (await inside.get("/v1/auth/me", headers=phone)).status_code == 401
        everywhere = await outside.post("/v1/auth/sessions/revoke-all", headers=tablet)
        assert everywhere.status_code == 204, everywhere.text
        assert (await inside.get("/v1/auth/me", headers=tablet)).status_code == 401


async def test_a_delegate_acting_for_a_held_leader_is_held_too(app, monkeypatch):
    allow(monkeypatch, {"leader": AGENCIES})
    unit = await make_unit()
    leader = await make_account(role=Role.LEADER, unit=unit)
    assistant = await make_account(role=Role.MEMBER, unit=unit)
    async with client_at(app, INSIDE) as inside, client_at(app, OUTSIDE) as outside:
        expires = (clock.utcnow() + dt.timedelta(days=7)).isoformat()
        granted = await inside.post(
            "/v1/delegations",
            headers=await sign_in(inside, leader),
            json={"delegate_id": str(assistant.id), "permissions": ["units:read"], "expires_at": expires},
        )
        assert granted.status_code == 201, granted.text
        own = await sign_in(outside, assistant)  # the assistant's own role is not held
        assert (await outside.get("/v1/auth/me", headers=own)).status_code == 200
        acting = {**own, "X-On-Behalf-Of": granted.json()["id"]}
        refused = await outside.get("/v1/units", headers=acting)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "network_not_allowed"
        assert (await inside.get("/v1/units", headers=acting)).status_code == 200
    [row] = await refusals("permission.denied")
    assert (row.actor_id, row.on_behalf_of_id) == (assistant.id, leader.id)
    assert row.details["rule"] == "leader"


async def test_ipv6_and_ipv4_mapped_addresses(app, monkeypatch):
    # The IPv4 range also written as IPv4-mapped IPv6: the same addresses.
    allow(monkeypatch, {"audit:read": ["2001:db8:20::/48", "::ffff:10.20.0.0/112"]})
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    async with client_at(app, "2001:db8:20::7") as v6_inside:
        headers = await sign_in(v6_inside, admin)
        assert (await v6_inside.get("/v1/audit", headers=headers)).status_code == 200
    for address in ("2001:db8:21::7", "::ffff:203.0.113.10", "10.21.0.1"):
        async with client_at(app, address) as elsewhere:
            refused = await elsewhere.get("/v1/audit", headers=headers)
            assert refused.status_code == 403, address
            assert refused.json()["error"]["code"] == "network_not_allowed"
    # A dual-stack socket's report of an IPv4 peer, and the plain IPv4 address.
    for address in ("::ffff:10.20.9.9", "10.20.9.9"):
        async with client_at(app, address) as mapped:
            assert (await mapped.get("/v1/audit", headers=headers)).status_code == 200, address
    assert len(await refusals("permission.denied")) == 3


def test_rules_apply_together_and_name_the_first_refusing_one(monkeypatch):
    allow(monkeypatch, {"users:write": ["10.20.0.0/16"], "unit_admin": ["10.0.0.0/8"]})
    rules = networks.rules()
    assert rules.refusing("10.20.1.1", roles=[Role.UNIT_ADMIN], permissions=[Permission.USERS_WRITE]) is None
    refusing = rules.refusing("10.30.1.1", roles=[Role.UNIT_ADMIN], permissions=[Permission.USERS_WRITE])
    assert refusing is not None and refusing.key == "users:write"
    assert rules.refusing("10.30.1.1", permissions=[Permission.USERS_READ]) is None
    # Whatever is not an address (a missing peer) is admitted by no rule.
    for nothing in (None, "", "testclient"):
        assert rules.refusing(nothing, permissions=[Permission.USERS_WRITE]) is not None
        assert rules.refusing(nothing, permissions=[Permission.USERS_READ]) is None


@pytest.fixture
def proxy_trusted(monkeypatch):
    def trust(cidrs: list[str]) -> None:
        monkeypatch.setattr(get_settings(), "trusted_proxies", cidrs)
        client_ip._trusted.cache_clear()

    yield trust
    monkeypatch.undo()
    client_ip._trusted.cache_clear()


async def test_behind_the_trusted_proxy_only_the_proxys_hop_counts(app, monkeypatch, proxy_trusted):
    """A real uvicorn as `chuong serve` runs it; the test's client is the proxy at 127.0.0.1."""
    allow(monkeypatch, {"users:write": AGENCIES})
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    member = await make_account(role=Role.MEMBER, unit=unit)
    path = f"/v1/users/{member.id}/enable"
    async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        headers = await sign_in(http, admin)

        async def status_from(forwarded: str) -> tuple[int, str | None]:
            response = await http.post(path, headers={**headers, "X-Forwarded-For": forwarded})
            code = response.json()["error"]["code"] if response.status_code >= 400 else None
            return response.status_code, code

        # No proxy trusted: the header is the caller's own claim, the peer is 127.0.0.1.
        proxy_trusted([])
        assert await status_from(INSIDE) == (403, "network_not_allowed")
        # 127.0.0.1 is the trusted proxy: the hop it appended is the client.
        proxy_trusted(["127.0.0.1/32"])
        assert await status_from(INSIDE) == (200, None)
        assert await status_from(OUTSIDE) == (403, "network_not_allowed")
        # A caller outside writes an inside address; the proxy appends the real one.
        assert await status_from(f"{INSIDE}, {OUTSIDE}") == (403, "network_not_allowed")
        # Not an address: never believed, the peer (127.0.0.1) is the client.
        assert await status_from("not-an-ip") == (403, "network_not_allowed")

    rows = await refusals("permission.denied")
    assert [row.ip for row in rows] == ["127.0.0.1", OUTSIDE, OUTSIDE, "127.0.0.1"]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"users:write": ["10.20.0.5/16"]}, "'10.20.0.5/16' is not an address range"),
        ({"users:write": ["10.20.0.0/33"]}, "'10.20.0.0/33' is not an address range"),
        ({"users:write": ["vpn"]}, "'vpn' is not an address range"),
        ({"users:write": []}, "lists no network"),
    ],
)
def test_a_range_that_is_not_one_stops_the_start(monkeypatch, rules, message):
    monkeypatch.setenv("CHUONG_ALLOWED_NETWORKS", json.dumps(rules))
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_the_setting_is_read_as_json(monkeypatch):
    monkeypatch.setenv("CHUONG_ALLOWED_NETWORKS", json.dumps({"news:approve": [" 10.20.0.0/16", "fd00::/8"]}))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.allowed_networks == {"news:approve": ["10.20.0.0/16", "fd00::/8"]}


def test_an_unknown_role_or_permission_stops_the_app_factory(monkeypatch):
    from cli.asgi import create_app

    allow(monkeypatch, {"user:write": ["10.20.0.0/16"]})
    with pytest.raises(ValueError, match="neither a role nor a permission: user:write"):
        create_app(manage_resources=False)
    allow(monkeypatch, {"users:write": ["10.20.0.0/16"], "publisher": ["10.20.0.0/16"]})
    create_app(manage_resources=False)
