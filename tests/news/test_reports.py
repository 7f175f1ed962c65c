"""Reports per component portal and app (issue 19 item 5) on real rows: the figures per period,
language and section, each portal seeing only its own subtree, the totals surviving the
retention purge (the per-language figures too, from their summary), and the audited CSV export."""

from __future__ import annotations

import csv
import datetime as dt
import io

from sqlalchemy import text

from auth.roles import Role
from notifications import retention
from tests.news.report_rows import VN, Device, portals_with_pushes, push
from tests.support.factories import make_account, make_unit, sign_in

WEEKS = {"period": "week", "start": "2026-01-05", "end": "2026-01-18", "languages": "true"}


def _table(body: dict, breakdown: str) -> dict[tuple[str, str, str, str], dict]:
    return {
        (row["period_start"], row["app"], row["unit_name"], row["key"]): row["figures"]
        for row in body["rows"]
        if row["breakdown"] == breakdown
    }


def _f(n, targeted, sent, invalid, received, opened, rate) -> dict:
    return {
        "notifications": n,
        "devices_targeted": targeted,
        "devices_sent": sent,
        "devices_invalid": invalid,
        "devices_failed": 0,
        "readers_reached": received,
        "readers_opened": opened,
        "open_rate": rate,
    }


async def test_a_portal_sees_its_figures_per_week_language_and_section(client, owner_engine):
    board, _, portal_b, editor_a = await portals_with_pushes(owner_engine)
    headers = await sign_in(client, editor_a)

    response = await client.get("/v1/reports/pushes", params=WEEKS, headers=headers)

    assert response.status_code == 200, response.text
    body = response.json()
    a = "Cổng Hà Nội"
    assert _table(body, "total") == {
        ("2026-01-05", "portal", a, ""): _f(2, 6, 5, 1, 5, 2, 0.4),
        ("2026-01-05", "tracking", a, ""): _f(1, 1, 1, 0, 1, 0, 0.0),
        ("2026-01-12", "portal", a, ""): _f(1, 1, 1, 0, 0, 0, None),
    }
    languages = _table(body, "language")
    assert languages[("2026-01-05", "portal", a, "vi")] == _f(None, 2, 2, 0, 2, 1, 0.5)
    assert languages[("2026-01-05", "portal", a, "en")] == _f(None, 2, 1, 1, 1, 1, 1.0)
    assert languages[("2026-01-05", "portal", a, "fr")] == _f(None, 2, 2, 0, 2, 0, 0.0)
    assert ("2026-01-05", "portal", a, "unknown") not in languages  # nothing purged yet
    sections = _table(body, "section")
    assert sections[("2026-01-05", "portal", a, "van-kien")] == _f(1, 4, 3, 1, 3, 2, 0.6667)
    assert sections[("2026-01-05", "portal", a, "tu-lieu")] == _f(1, 4, 3, 1, 3, 2, 0.6667)
    assert sections[("2026-01-05", "portal", a, "all_readers")] == _f(1, 2, 2, 0, 2, 0, 0.0)
    assert sections[("2026-01-12", "portal", a, "other")] == _f(1, 1, 1, 0, 0, 0, None)
    # languages=false leaves the split out, the rest identical; it is on by default.
    plain = (
        await client.get("/v1/reports/pushes", params={**WEEKS, "languages": "false"}, headers=headers)
    ).json()
    assert _table(plain, "language") == {}
    assert _table(plain, "total") == _table(body, "total") and _table(plain, "section") == sections
    default = {key: value for key, value in WEEKS.items() if key != "languages"}
    assert (await client.get("/v1/reports/pushes", params=default, headers=headers)).json() == body
    # The other portal's push is not in A's report, nor reachable by naming its unit.
    assert {row["unit_name"] for row in body["rows"]} == {a}
    other = await client.get(
        "/v1/reports/pushes", params={**WEEKS, "unit_id": str(portal_b.id)}, headers=headers
    )
    assert other.status_code == 404

    # The board's admin sees both portals, and may narrow to one, and to one app by month.
    admin = await sign_in(client, await make_account(role=Role.UNIT_ADMIN, unit=board))
    everything = (await client.get("/v1/reports/pushes", params=WEEKS, headers=admin)).json()
    assert {row["unit_name"] for row in everything["rows"]} == {a, "Cổng Huế"}
    monthly = await client.get(
        "/v1/reports/pushes",
        params={
            "period": "month",
            "start": "2026-01-01",
            "end": "2026-01-31",
            "app": "portal",
            "unit_id": str(portal_b.id),
        },
        headers=admin,
    )
    assert _table(monthly.json(), "total") == {
        ("2026-01-01", "portal", "Cổng Huế", ""): _f(1, 1, 1, 0, 1, 1, 1.0)
    }


async def test_totals_and_languages_survive_the_retention_purge(client, owner_engine):
    _, _, _, editor_a = await portals_with_pushes(owner_engine)
    headers = await sign_in(client, editor_a)
    before = (await client.get("/v1/reports/pushes", params=WEEKS, headers=headers)).json()

    # 420 days later: the deliveries (30 days) and the receipts (365 days) are gone, summed and
    # summarised by language first.
    await retention.purge(now=dt.datetime(2027, 3, 1, tzinfo=dt.UTC))
    async with owner_engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM receipts"))).scalar_one() == 0
        assert (await conn.execute(text("SELECT count(*) FROM deliveries"))).scalar_one() == 0

    after = (await client.get("/v1/reports/pushes", params=WEEKS, headers=headers)).json()
    assert _table(after, "total") == _table(before, "total")
    assert _table(after, "section") == _table(before, "section")
    assert _table(after, "language") == _table(before, "language")
    assert ("2026-01-05", "portal", "Cổng Hà Nội", "unknown") not in _table(after, "language")


async def test_csv_export_is_bom_utf8_and_audited(client, owner_engine):
    _, _, _, editor_a = await portals_with_pushes(owner_engine)
    headers = await sign_in(client, editor_a)

    response = await client.get("/v1/reports/pushes.csv", params=WEEKS, headers=headers)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    raw = response.content.decode("utf-8")
    assert raw.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(raw[1:])))
    total = next(
        r
        for r in rows
        if r["breakdown"] == "total" and r["period_start"] == "2026-01-05" and r["app"] == "portal"
    )
    assert total["unit_name"] == "Cổng Hà Nội"
    assert (total["notifications"], total["devices_sent"], total["readers_reached"], total["open_rate"]) == (
        "2",
        "5",
        "5",
        "0.4000",
    )
    assert len(rows) == len(
        (await client.get("/v1/reports/pushes", params=WEEKS, headers=headers)).json()["rows"]
    )
    async with owner_engine.connect() as conn:
        audited = (
            await conn.execute(
                text("SELECT actor_id, details FROM audit_log WHERE action = 'report.exported'")
            )
        ).all()
    assert len(audited) == 1
    assert audited[0].actor_id == editor_a.id
    assert audited[0].details["rows"] == len(rows) and audited[0].details["period"] == "week"


async def test_bad_ranges_are_422_and_readers_without_permission_403(client, owner_engine):
    _, portal_a, _, editor_a = await portals_with_pushes(owner_engine)
    headers = await sign_in(client, editor_a)
    too_long = await client.get(
        "/v1/reports/pushes",
        params={"period": "day", "start": "2025-01-01", "end": "2026-01-02"},
        headers=headers,
    )
    assert too_long.status_code == 422 and too_long.json()["error"]["code"] == "report_range_too_long"
    backwards = await client.get(
        "/v1/reports/pushes", params={"start": "2026-02-01", "end": "2026-01-01"}, headers=headers
    )
    assert backwards.status_code == 422
    bad_period = await client.get("/v1/reports/pushes", params={"period": "year"}, headers=headers)
    assert bad_period.status_code == 422
    reporter = await sign_in(client, await make_account(role=Role.REPORTER, unit=portal_a))
    assert (await client.get("/v1/reports/pushes", headers=reporter)).status_code == 403


async def test_a_unit_name_typed_as_a_formula_stays_text_in_the_csv(client, owner_engine):
    board, _, _, _ = await portals_with_pushes(owner_engine)
    portal = await make_unit(parent=board, name='=HYPERLINK("http://evil.example","x")')
    editor = await make_account(role=Role.EDITOR, unit=portal)
    async with owner_engine.begin() as conn:
        await push(
            conn, unit_id=portal.id, created=dt.datetime(2026, 1, 8, 9, tzinfo=VN), devices=[Device("vi")]
        )

    response = await client.get("/v1/reports/pushes.csv", params=WEEKS, headers=await sign_in(client, editor))

    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8")[1:])))
    assert {row[4] for row in rows[1:]} == {'\'=HYPERLINK("http://evil.example","x")'}
