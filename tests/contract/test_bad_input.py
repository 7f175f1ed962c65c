"""Hostile and malformed input gets a 4xx in the one error shape, never a 500.

Everything goes through the real app and real routes: the middleware (request id, body size,
URL hygiene), FastAPI's body parsing, ``RequestModel`` (unknown fields, NFC, NUL, surrogates) and
the error handlers.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from api.deps import PUBLIC
from core.config import get_settings
from tests.contract.conftest import Admin
from tests.contract.support import STRONG_PASSWORD, assert_error

FULL_NAME = "Nguyễn Thị Ánh Tuyết"


def _json(headers: dict[str, str] | None = None) -> dict[str, str]:
    return {"content-type": "application/json", **(headers or {})}


# Raw bodies for the three routes, so that "\ud800" stays an escape the JSON parser must decode.
def _login_body(username: str) -> bytes:
    return b'{"username": "%s", "password": "whatever-password"}' % username.encode()


def _create_body(unit_id: uuid.UUID, full_name: str) -> bytes:
    return b'{"username": "nv%s", "full_name": "%s", "unit_id": "%s", "role": "member", "password": "%s"}' % (
        uuid.uuid4().hex[:8].encode(),
        full_name.encode(),
        str(unit_id).encode(),
        STRONG_PASSWORD.encode(),
    )


def _update_body(full_name: str) -> bytes:
    return b'{"full_name": "%s"}' % full_name.encode()


async def _send_to_each_route(client: httpx.AsyncClient, admin: Admin, text: str) -> list[httpx.Response]:
    """``text`` is pasted verbatim inside a JSON string literal of each body."""
    return [
        await client.post("/v1/auth/login", content=_login_body(text), headers=_json()),
        await client.post(
            "/v1/users", content=_create_body(admin.account.unit_id, text), headers=_json(admin.headers)
        ),
        await client.patch(
            f"/v1/users/{admin.member.id}", content=_update_body(text), headers=_json(admin.headers)
        ),
    ]


# --- malformed bodies -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b'{"username": "a", "password": ', b"{'username': 'a'}", b"\xff\xfe{}", b"", b"null", b"[1, 2]"],
    ids=["truncated", "single-quotes", "not-utf8", "empty", "null", "array"],
)
async def test_malformed_json_is_422_in_the_shape(client, admin, body):
    for response in [
        await client.post("/v1/auth/login", content=body, headers=_json()),
        await client.post("/v1/users", content=body, headers=_json(admin.headers)),
        await client.patch(f"/v1/users/{admin.member.id}", content=body, headers=_json(admin.headers)),
    ]:
        assert_error(response, 422, "validation_error")


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "x\\udc00y", "\\ud800\\ud800"])
async def test_lone_surrogate_escape_in_a_body_string_is_422_not_500(client, admin, escape):
    for response in await _send_to_each_route(client, admin, escape):
        assert_error(response, 422, "validation_error")
        assert "\\ud" not in response.text.lower()  # the offending input is never echoed back


async def test_lone_surrogate_in_a_json_key_is_422(client, admin):
    response = await client.patch(
        f"/v1/users/{admin.member.id}", content=b'{"\\ud800": "x"}', headers=_json(admin.headers)
    )
    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize("text", ["\\u0000", "abc\\u0000def", "Nguy\\u0000\\u1ec5n"])
async def test_nul_in_a_body_string_is_422(client, admin, text):
    for response in await _send_to_each_route(client, admin, text):
        assert_error(response, 422, "validation_error")


async def test_nul_in_a_json_key_or_nested_value_is_422(client, admin):
    key = await client.patch(
        f"/v1/users/{admin.member.id}", content=b'{"full\\u0000name": "x"}', headers=_json(admin.headers)
    )
    assert_error(key, 422, "validation_error")
    nested = await client.post(
        "/v1/delegations",
        json={
            "delegate_id": str(admin.member.id),
            "permissions": ["units:read\x00"],
            "expires_at": "2099-01-01T00:00:00Z",
        },
        headers=admin.headers,
    )
    assert_error(nested, 422, "validation_error")


# --- URL hygiene ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/v1/users?q=%00",
        "/v1/users?q=abc%00",
        "/v1/users?cursor=%00&limit=5",
        "/v1/users?q%00=x",
        "/v1/users/%00",
        "/v1/users/2cd4a9c5-2a2a-4eb9-893d-19acac2e3ac9%00",
        "/v1/users%00/x",
    ],
)
async def test_nul_in_query_or_path_is_422(client, admin, url):
    assert_error(await client.get(url, headers=admin.headers), 422, "validation_error")


@pytest.mark.parametrize(
    "url",
    [
        "/v1/users?q=%ff",
        "/v1/users?q=%c3",  # truncated two-byte sequence
        "/v1/users?q=%ed%a0%80",  # a UTF-8-encoded surrogate
        "/v1/users?q=%c0%af",  # overlong encoding of "/"
        "/v1/users/%ff",
        "/v1/units/%ed%a0%80",
    ],
)
async def test_invalid_utf8_percent_escapes_in_the_url_are_422(client, admin, url):
    assert_error(await client.get(url, headers=admin.headers), 422, "validation_error")


async def test_url_checks_run_before_authentication(client):
    assert_error(await client.get("/v1/users?q=%00"), 422, "validation_error")


async def test_valid_percent_encoded_utf8_in_the_query_is_accepted(client, admin):
    response = await client.get("/v1/users", params={"q": "Nguyễn"}, headers=admin.headers)
    assert response.status_code == 200, response.text


# --- body size ------------------------------------------------------------------------------


def _too_big() -> bytes:
    limit = get_settings().max_body_bytes
    padding = b"x" * (limit + 1)
    return b'{"username": "a", "password": "' + padding + b'"}'


async def test_oversized_body_with_content_length_is_413_in_the_shape(client, admin):
    for response in [
        await client.post("/v1/auth/login", content=_too_big(), headers=_json()),
        await client.post("/v1/users", content=_too_big(), headers=_json(admin.headers)),
    ]:
        assert_error(response, 413, "payload_too_large")


async def test_oversized_chunked_body_without_content_length_is_413_in_the_shape(client, admin):
    async def chunks() -> AsyncIterator[bytes]:
        body = _too_big()
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    for path, headers in [("/v1/auth/login", _json()), ("/v1/users", _json(admin.headers))]:
        request = client.build_request("POST", path, content=chunks(), headers=headers)
        assert "content-length" not in request.headers
        assert request.headers["transfer-encoding"] == "chunked"
        assert_error(await client.send(request), 413, "payload_too_large")


async def test_non_numeric_content_length_is_rejected(client):
    request = client.build_request("POST", "/v1/auth/login", content=b"{}", headers=_json())
    request.headers["content-length"] = "abc"
    assert_error(await client.send(request), (400, 413), None)


async def test_a_body_at_the_limit_is_parsed_not_refused(client):
    limit = get_settings().max_body_bytes
    head, tail = b'{"username": "a", "password": "', b'"}'
    body = head + b"x" * (limit - len(head) - len(tail)) + tail
    assert len(body) == limit
    # Parsed and validated (the password is too long for the schema), not refused by size.
    assert_error(await client.post("/v1/auth/login", content=body, headers=_json()), 422, "validation_error")


# --- unknown fields (no mass assignment) ----------------------------------------------------


async def test_unknown_fields_are_422_and_change_nothing(client, admin):
    login = await client.post(
        "/v1/auth/login",
        json={"username": admin.member.username, "password": admin.member.password, "role": "system_admin"},
    )
    error = assert_error(login, 422, "validation_error")
    assert any(
        detail["loc"][-1] == "role" and detail["type"] == "extra_forbidden" for detail in error["details"]
    )

    for field, value in [
        ("status", "active"),
        ("is_active", False),
        ("username", "renamed"),
        ("id", str(uuid.uuid4())),
    ]:
        response = await client.patch(
            f"/v1/users/{admin.member.id}", json={"full_name": "Đổi tên", field: value}, headers=admin.headers
        )
        error = assert_error(response, 422, "validation_error")
        assert [d["loc"][-1] for d in error["details"] if d["type"] == "extra_forbidden"] == [field]

    unit = await client.patch(
        f"/v1/units/{admin.account.unit_id}",
        json={"name": "Tên mới", "parent_id": str(uuid.uuid4()), "status": "closed"},
        headers=admin.headers,
    )
    assert_error(unit, 422, "validation_error")

    member = (await client.get(f"/v1/users/{admin.member.id}", headers=admin.headers)).json()
    assert member["full_name"] != "Đổi tên"
    assert member["username"] == admin.member.username
    assert member["is_active"] is True
    assert member["role"] == "member"


async def test_a_self_service_body_cannot_carry_role_or_unit(client, admin):
    response = await client.post(
        "/v1/auth/password",
        json={
            "current_password": admin.account.password,
            "new_password": STRONG_PASSWORD,
            "role": "system_admin",
            "unit_id": str(uuid.uuid4()),
        },
        headers=admin.headers,
    )
    # 422 for the extra fields (or 403 before parsing would also leave nothing assigned).
    error = assert_error(response, (403, 422))
    if response.status_code == 422:
        assert {d["loc"][-1] for d in error["details"] if d["type"] == "extra_forbidden"} == {
            "role",
            "unit_id",
        }


# --- content type ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b'{"username": "a", "password": "b"}'),
        ("application/x-www-form-urlencoded", b"username=a&password=b"),
        (
            "multipart/form-data; boundary=xyz",
            b'--xyz\r\nContent-Disposition: form-data; name="username"\r\n\r\na\r\n--xyz--\r\n',
        ),
        ("application/xml", b"<login><username>a</username></login>"),
        (None, b'{"username": "a", "password": "b"}'),
    ],
)
async def test_a_non_json_content_type_is_refused_in_the_shape(client, admin, content_type, body):
    headers = {"content-type": content_type} if content_type else {}
    for response in [
        await client.post("/v1/auth/login", content=body, headers=headers),
        await client.post("/v1/users", content=body, headers={**admin.headers, **headers}),
    ]:
        assert_error(response, (415, 422))


# --- Unicode NFC ----------------------------------------------------------------------------


async def test_text_sent_in_nfd_is_stored_in_nfc(client, admin):
    nfd = unicodedata.normalize("NFD", FULL_NAME)
    assert nfd != FULL_NAME
    created = await client.post(
        "/v1/users",
        json={
            "username": f"tuyet{uuid.uuid4().hex[:6]}",
            "full_name": nfd,
            "position": unicodedata.normalize("NFD", "Phó phòng"),
            "unit_id": str(admin.account.unit_id),
            "role": "member",
            "password": STRONG_PASSWORD,
        },
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    stored = (await client.get(f"/v1/users/{user_id}", headers=admin.headers)).json()
    assert stored["full_name"] == FULL_NAME
    assert stored["position"] == "Phó phòng"

    renamed = unicodedata.normalize("NFD", "Trần Đức Lưỡng")
    patched = await client.patch(f"/v1/users/{user_id}", json={"full_name": renamed}, headers=admin.headers)
    assert patched.status_code == 200, patched.text
    stored = (await client.get(f"/v1/users/{user_id}", headers=admin.headers)).json()
    assert stored["full_name"] == "Trần Đức Lưỡng"
    assert unicodedata.is_normalized("NFC", stored["full_name"])

    unit = await client.patch(
        f"/v1/units/{admin.account.unit_id}",
        json={"name": unicodedata.normalize("NFD", "Sở Thông tin và Truyền thông")},
        headers=admin.headers,
    )
    assert unit.status_code == 200, unit.text
    stored_unit = (await client.get(f"/v1/units/{admin.account.unit_id}", headers=admin.headers)).json()
    assert stored_unit["name"] == "Sở Thông tin và Truyền thông"


# --- the shape of every error ---------------------------------------------------------------


async def test_unknown_route_is_404_in_the_shape(client):
    assert_error(await client.get("/v1/no-such-thing"), 404, "not_found")
    assert_error(await client.post("/v1/users/x/y/z", json={}), 404, "not_found")


async def test_wrong_method_is_405_in_the_shape(client):
    response = await client.delete("/v1/auth/login")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]


async def test_missing_token_is_401_in_the_shape(client):
    response = await client.get("/v1/users")
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_supplied_request_id_is_echoed_and_a_bad_one_replaced(client):
    echoed = await client.get("/v1/no-such-thing", headers={"x-request-id": "abc-123.X_y"})
    assert assert_error(echoed, 404)["request_id"] == "abc-123.X_y"
    replaced = await client.get(
        "/v1/no-such-thing", headers={"x-request-id": "bad id\twith\ttabs" + "x" * 80}
    )
    request_id = assert_error(replaced, 404)["request_id"]
    assert request_id != "" and " " not in request_id and len(request_id) <= 64


async def test_an_unexpected_exception_is_500_in_the_shape_without_leaking(database_url, redis):
    from cli.asgi import create_app

    app = create_app(manage_resources=False)

    @app.get("/boom", dependencies=[PUBLIC])
    async def boom() -> None:
        raise RuntimeError("password=hunter2 at postgresql://secret-host/db")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/boom", headers={"x-request-id": "boom-1"})
    error = assert_error(response, 500, "internal_error")
    assert error["request_id"] == "boom-1"
    assert "hunter2" not in response.text
    assert "secret-host" not in response.text
    assert "RuntimeError" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"
