"""Hostile values hidden inside opaque parameters, and limits of the libraries behind the API.

Each case here was a 500 found by probing what the schema cannot describe: cursors are opaque
base64 strings whose decoded content reaches SQL, time filters that overflow when converted to
UTC, password lengths a library refuses, an explicit null for a NOT NULL column, and header
values stored in the database. The requests go through ``lenient``, which turns an exception
escaping the app into the 500 a server would send, so a failure shows the status.
"""

from __future__ import annotations

import base64
import uuid

import pytest

from auth.roles import Role
from tests.contract.support import STRONG_PASSWORD, assert_error
from tests.support.factories import make_account, make_unit

FULL_NAME = "Nguyễn Thị Ánh Tuyết"


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("path", ["/v1/users", "/v1/units"])
@pytest.mark.parametrize("decoded", [b'"\\u0000"', b'"a\\ud800"'], ids=["nul", "lone-surrogate"])
async def test_a_cursor_that_decodes_to_nul_or_a_lone_surrogate_is_4xx(lenient, admin, path, decoded):
    response = await lenient.get(path, params={"cursor": _cursor(decoded)}, headers=admin.headers)
    assert_error(response, (400, 422))


@pytest.mark.parametrize("path", ["/v1/audit", "/v1/audit/export.csv"])
@pytest.mark.parametrize("seq", [b"9223372036854775808", b"99999999999999999999999"])
async def test_an_audit_cursor_beyond_bigint_is_4xx(lenient, admin, path, seq):
    response = await lenient.get(path, params={"cursor": _cursor(b"audit:" + seq)}, headers=admin.headers)
    assert_error(response, (400, 422))


@pytest.mark.parametrize("path", ["/v1/audit", "/v1/audit/export.csv"])
@pytest.mark.parametrize(
    "params",
    [{"since": "9999-12-31T23:59:59-14:00"}, {"until": "0001-01-01T00:00:00+14:00"}],
    ids=["since-after-year-9999-in-utc", "until-before-year-1-in-utc"],
)
async def test_audit_time_filters_that_overflow_in_utc_are_4xx(lenient, admin, path, params):
    assert_error(await lenient.get(path, params=params, headers=admin.headers), (400, 422))


async def test_long_passwords_are_judged_not_500(lenient, admin):
    long_password = (STRONG_PASSWORD + " ") * 8  # ~200 characters: within the 256 limit
    created = await lenient.post(
        "/v1/users",
        json={
            "username": f"dai{uuid.uuid4().hex[:6]}",
            "full_name": FULL_NAME,
            "unit_id": str(admin.account.unit_id),
            "role": "member",
            "password": long_password,
        },
        headers=admin.headers,
    )
    assert created.status_code in (201, 422), created.text
    reset = await lenient.post(
        f"/v1/users/{admin.member.id}/reset-credentials",
        json={"new_password": long_password},
        headers=admin.headers,
    )
    assert reset.status_code in (200, 422), reset.text
    changed = await lenient.post(
        "/v1/auth/password",
        json={"current_password": admin.account.password, "new_password": long_password},
        headers=admin.headers,
    )
    assert changed.status_code in (204, 422), changed.text


async def test_null_for_a_required_column_in_a_patch_is_not_500(lenient, admin):
    response = await lenient.patch(
        f"/v1/users/{admin.member.id}", json={"full_name": None}, headers=admin.headers
    )
    assert response.status_code in (200, 422), response.text
    stored = (await lenient.get(f"/v1/users/{admin.member.id}", headers=admin.headers)).json()
    assert stored["full_name"]


async def test_nul_in_the_user_agent_does_not_break_sign_in(lenient):
    unit = await make_unit()
    account = await make_account(role=Role.MEMBER, unit=unit)
    # Servers such as uvicorn refuse NUL in headers, but the app must not depend on it.
    response = await lenient.post(
        "/v1/auth/login",
        json={"username": account.username, "password": account.password},
        headers={"user-agent": b"agent\x00x"},
    )
    assert response.status_code == 200, response.text
    failed = await lenient.post(
        "/v1/auth/login",
        json={"username": account.username, "password": "wrong"},
        headers={"user-agent": b"\x00"},
    )
    assert_error(failed, 401)
