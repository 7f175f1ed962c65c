"""Values the database cannot store are refused at the edge with a 422 (issue 12, item 4).

Each case looked valid to the schema and reached PostgreSQL (or Python's date arithmetic) before
core/types.py bounded it: a 500 and a dropped connection. Requests go through ``lenient``, which
turns an exception escaping the app into the 500 a server would send, so a failure shows it.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid

import pytest

from core import clock
from tests.contract.support import assert_error
from tests.news.helpers import draft, make_desk, submitted
from tests.tracking.helpers import make_org, task

BEYOND_UTC = "9999-12-31T23:59:59-14:00"  # year 10000 once converted to UTC: the value


def _loc(error: dict, field: str) -> bool:
    return any(detail["loc"][-1] == field for detail in error["details"])


async def test_a_send_time_beyond_year_9999_in_utc_is_422_not_500(lenient):
    desk = await make_desk(lenient)
    response = await lenient.post("/v1/news", json=draft(send_at=BEYOND_UTC), headers=desk.headers["editor"])
    assert _loc(assert_error(response, 422, "validation_error"), "send_at")


@pytest.mark.parametrize(
    "send_at",
    [BEYOND_UTC, "0001-01-01T00:00:00+14:00", "2999-01-01T00:00:00+07:00", "9999-12-31T23:59:59Z"],
    ids=["year-10000-in-utc", "year-0-in-utc", "beyond-the-window", "year-9999"],
)
async def test_out_of_range_send_times_are_422_on_draft_and_approval(lenient, send_at):
    desk = await make_desk(lenient)
    created = await lenient.post("/v1/news", json=draft(send_at=send_at), headers=desk.headers["editor"])
    assert_error(created, 422, "validation_error")
    item_id = await submitted(lenient, desk)
    approved = await lenient.post(
        f"/v1/news/{item_id}/approve", json={"send_at": send_at}, headers=desk.headers["publisher"]
    )
    assert_error(approved, 422, "validation_error")
    # Nothing was scheduled: the item still waits for an approval.
    item = (await lenient.get(f"/v1/news/{item_id}", headers=desk.headers["editor"])).json()
    assert item["status"] == "submitted" and item["send_at"] is None


async def test_a_send_time_with_an_offset_is_stored_as_the_same_instant(lenient):
    desk = await make_desk(lenient)
    local = (clock.utcnow() + dt.timedelta(days=2)).astimezone(dt.timezone(dt.timedelta(hours=-14)))
    created = await lenient.post(
        "/v1/news", json=draft(send_at=local.isoformat()), headers=desk.headers["editor"]
    )
    assert created.status_code == 201, created.text
    assert dt.datetime.fromisoformat(created.json()["send_at"]) == local


async def test_a_delegation_expiry_beyond_year_9999_in_utc_is_422(lenient, admin):
    response = await lenient.post(
        "/v1/delegations",
        json={"delegate_id": str(admin.member.id), "permissions": ["units:read"], "expires_at": BEYOND_UTC},
        headers=admin.headers,
    )
    assert _loc(assert_error(response, 422, "validation_error"), "expires_at")


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/inbox", {"since": BEYOND_UTC}),
        ("/v1/audit", {"until": "0001-01-01T00:00:00+14:00"}),
        ("/v1/tracking/calendar", {"since": "9999-12-31"}),
    ],
)
async def test_time_range_filters_out_of_range_are_422(lenient, admin, path, params):
    assert_error(await lenient.get(path, params=params, headers=admin.headers), 422, "validation_error")


async def test_an_integer_beyond_int64_is_422(lenient, admin):
    desk = await make_desk(lenient)
    for body in (draft(ttl_seconds=2**63), draft(ttl_seconds=2**80), draft(ttl_seconds=-(2**63) - 1)):
        response = await lenient.post("/v1/news", json=body, headers=desk.headers["editor"])
        assert _loc(assert_error(response, 422, "validation_error"), "ttl_seconds")
    section = await lenient.post(
        "/v1/sections",
        json={"code": "so-lon", "names": {"vi": "Số lớn"}, "position": 2**31},
        headers=admin.headers,
    )
    assert_error(section, 422, "validation_error")


async def test_nul_in_a_link_or_title_is_422(lenient):
    desk = await make_desk(lenient)
    for body in (
        draft(deep_link="chuong-portal://article/1\x00"),
        draft(title={"vi": "Tin\x00 nóng"}),
        draft(article_id="a\x00b"),
    ):
        response = await lenient.post("/v1/news", json=body, headers=desk.headers["editor"])
        assert_error(response, 422, "validation_error")


async def test_a_kpi_code_longer_than_its_column_is_422_not_500(lenient):
    # kpis.code is VARCHAR(32); the schema used to allow 64 characters.
    org = await make_org(lenient)
    kpi = {
        "code": "K" * 33,
        "period": "2026-11",
        "period_kind": "month",
        "version": 1,
        "name": "Chỉ số",
        "unit": org.province.code,
        "report_due": "2026-12-10",
    }
    response = await lenient.put("/v1/tracking/kpis", json={"kpis": [kpi]}, headers=org.system)
    assert _loc(assert_error(response, 422, "validation_error"), "code")
    fits = await lenient.put(
        "/v1/tracking/kpis", json={"kpis": [{**kpi, "code": "K" * 32}]}, headers=org.system
    )
    assert fits.status_code == 200, fits.text


@pytest.mark.parametrize("raw", [b"NaN", b"Infinity", b"-Infinity", b'"NaN"', b'"sNaN"', b'"Infinity"'])
async def test_nan_and_infinity_are_422(lenient, raw):
    org = await make_org(lenient)
    body = (
        b'{"kpis": [{"code": "K.1", "period": "2026-11", "period_kind": "month", "version": 1, '
        b'"name": "x", "unit": "%s", "report_due": "2026-12-10", "value": %s}]}'
        % (org.province.code.encode(), raw)
    )
    response = await lenient.put(
        "/v1/tracking/kpis", content=body, headers={**org.system, "content-type": "application/json"}
    )
    assert_error(response, 422, "validation_error")
    desk = await make_desk(lenient)
    news = await lenient.post(
        "/v1/news",
        content=b'{"article_id": "a", "deep_link": "chuong-portal://a", "title": {"vi": "t"}, '
        b'"body": {"vi": "b"}, "audience": {"all_readers": true}, "ttl_seconds": %s}' % raw,
        headers={**desk.headers["editor"], "content-type": "application/json"},
    )
    assert_error(news, 422, "validation_error")


@pytest.mark.parametrize("depth", [500, 900, 1_000, 100_000])
async def test_deeply_nested_json_is_4xx_not_500(lenient, admin, depth):
    body = b'{"full_name": ' + b"[" * depth + b"]" * depth + b"}"
    response = await lenient.patch(
        f"/v1/users/{admin.member.id}",
        content=body,
        headers={**admin.headers, "content-type": "application/json"},
    )
    assert_error(response, (400, 422))


async def test_a_task_with_a_deadline_at_the_edge_of_the_window_is_accepted(lenient):
    org = await make_org(lenient)
    response = await lenient.put(
        "/v1/tracking/tasks",
        json={"tasks": [task(org, "BIEN", deadline="2200-12-31T23:59:59+07:00")]},
        headers=org.system,
    )
    assert response.status_code == 200, response.text
    beyond = await lenient.put(
        "/v1/tracking/tasks",
        json={"tasks": [task(org, "BIEN2", deadline="2200-12-31T23:59:59-14:00")]},
        headers=org.system,
    )
    assert_error(beyond, 422, "validation_error")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "stamp", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2026-01-01T00:00:00"]
)
async def test_a_task_cursor_with_a_time_out_of_range_is_4xx(lenient, admin, stamp):
    cursor = _b64(f"{stamp}|{uuid.uuid4()}".encode())
    response = await lenient.get("/v1/tracking/tasks", params={"cursor": cursor}, headers=admin.headers)
    assert_error(response, (400, 422))


@pytest.mark.parametrize("name", [b'"a\\u0000b"', b'"\\ud800"'], ids=["nul", "lone-surrogate"])
async def test_an_api_client_cursor_with_nul_or_a_lone_surrogate_is_4xx(lenient, admin, name):
    # Padded, as the API hands it out, so that it decodes and its name reaches the query.
    cursor = base64.urlsafe_b64encode(b'[%s, "%s"]' % (name, str(uuid.uuid4()).encode())).decode()
    response = await lenient.get("/v1/api-clients", params={"cursor": cursor}, headers=admin.headers)
    assert_error(response, (400, 422))
