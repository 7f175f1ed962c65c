"""GET /v1/audit/export.csv: formula injection neutralised, Vietnamese intact, scoped, capped."""

from __future__ import annotations

import csv
import io

import pytest

from auth.audit.export import BOM, HEADER, neutralise, stream_csv
from auth.audit.query import AuditFilter, AuditScope, decode_cursor
from tests.audit.helpers import create_unit_via_api, make_tree, write_rows
from tests.support.factories import sign_in

PAYLOADS = ("=cmd|' /C calc'!A0", "+1", "-1", "@SUM(1)", "\t=1+1", "\r=1+1")


def parse(body: bytes) -> list[dict[str, str]]:
    assert body.startswith(BOM.encode("utf-8"))
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def test_the_header_follows_the_table_and_keeps_the_file_format():
    # The columns come from the model (auth/audit/models.py); the file's columns stay these.
    assert HEADER == (
        "seq",
        "occurred_at_utc",
        "occurred_at_vn",
        "actor_kind",
        "actor_id",
        "on_behalf_of_id",
        "unit_id",
        "action",
        "object_type",
        "object_id",
        "outcome",
        "request_id",
        "ip",
        "user_agent",
        "details",
        "prev_hash",
        "hash",
    )


@pytest.mark.parametrize("payload", PAYLOADS)
def test_cells_that_could_be_formulas_are_prefixed_with_a_quote(payload):
    assert neutralise(payload) == "'" + payload


@pytest.mark.parametrize("value", ["", "Nguyễn Văn A", "1", "user.created", "'=already quoted", "a=b", " -1"])
def test_harmless_cells_are_left_alone(value):
    assert neutralise(value) == value


async def test_export_neutralises_injected_formulas_and_keeps_vietnamese(client):
    tree = await make_tree()
    headers = await sign_in(client, tree.system_admin)
    await create_unit_via_api(client, headers, tree.a)  # details carry "Sở Nội vụ"
    # An attacker controls the username of a failed sign-in and the User-Agent header.
    await client.post(
        "/v1/auth/login",
        json={"username": PAYLOADS[0], "password": "wrong password 1"},
        headers={"User-Agent": "@SUM(1)"},
    )
    for payload in PAYLOADS:
        await write_rows(
            1, action="test.inject", object_type=payload, object_id=payload, details={"note": payload}
        )

    response = await client.get("/v1/audit/export.csv", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith('attachment; filename="chuong-audit-')
    rows = parse(response.content)
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row
    failed = next(r for r in rows if r["action"] == "auth.login_failed")
    assert failed["user_agent"] == "'@SUM(1)"
    assert '"username": "=cmd' in failed["details"]  # inside JSON, never at the start of a cell
    injected = sorted(r["object_id"] for r in rows if r["action"] == "test.inject")
    assert injected == sorted("'" + p for p in PAYLOADS)
    assert any("Sở Nội vụ" in r["details"] for r in rows if r["action"] == "unit.created")
    assert rows[0]["action"] == "audit.exported"  # recorded (and committed) before the body streamed
    assert [int(r["seq"]) for r in rows] == sorted((int(r["seq"]) for r in rows), reverse=True)
    assert rows[0]["occurred_at_vn"].endswith("+07:00") and rows[0]["occurred_at_utc"].endswith("+00:00")


async def test_export_applies_filters_and_the_unit_scope(client):
    tree = await make_tree()
    for tag, unit in (("a", tree.a), ("a_child", tree.a_child), ("b", tree.b)):
        await write_rows(2, action="test.scope", unit_id=unit.id, details={"tag": tag})
    headers = await sign_in(client, tree.admin_a)
    response = await client.get("/v1/audit/export.csv", headers=headers, params={"action": "test."})
    rows = parse(response.content)
    assert len(rows) == 4 and {r["unit_id"] for r in rows} == {str(tree.a.id), str(tree.a_child.id)}
    everything = parse((await client.get("/v1/audit/export.csv", headers=headers)).content)
    assert str(tree.b.id) not in {r["unit_id"] for r in everything}


async def test_capped_export_says_so_and_continues_without_gaps(database_url):
    await write_rows(13, action="test.cap")
    scope, filters = AuditScope(unit_path=None), AuditFilter(action="test.cap")
    seqs: list[int] = []
    before_seq = None
    for _ in range(5):
        body = b"".join(
            [
                chunk
                async for chunk in stream_csv(
                    scope=scope, filters=filters, before_seq=before_seq, max_rows=5, batch=2
                )
            ]
        )
        lines = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
        data = [line for line in lines[1:] if not line[0].startswith("#")]
        seqs.extend(int(line[0]) for line in data)
        marker = [line for line in lines if line[0].startswith("# truncated")]
        if not marker:
            break
        before_seq = decode_cursor(marker[0][0].rsplit("cursor=", 1)[1])
    assert seqs == list(range(13, 0, -1))
