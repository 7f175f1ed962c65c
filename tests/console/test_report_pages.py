"""The push report page over HTTP: the form's choices narrow the table, the figures are the
domain's (tests/news/test_reports.py checks them in full), the CSV link downloads the audited file."""

from __future__ import annotations

from sqlalchemy import text

from tests.console.support import console_sign_in
from tests.news.report_rows import portals_with_pushes


async def test_report_page_shows_the_portal_figures_and_exports_csv(console, owner_engine):
    _, _, portal_b, editor_a = await portals_with_pushes(owner_engine)
    await console_sign_in(console, editor_a)

    page = await console.get(
        "/console/reports",
        params={
            "period": "week",
            "start": "2026-01-05",
            "end": "2026-01-18",
            "app": "portal",
            "languages": "1",
        },
    )

    assert page.status_code == 200
    html = page.text
    assert 'data-testid="report-total"' in html
    assert "Cổng Hà Nội" in html and "Cổng Huế" not in html  # only A's own subtree
    assert "40.0 %" in html  # 2 of 5 readers reached opened, week of 5 January
    # A section by its name (seeded "van-kien"), one the table does not know by its code.
    assert "Văn kiện" in html and "tu-lieu" in html and "fr" in html
    assert (
        'href="/console/reports/export.csv?period=week&amp;start=2026-01-05&amp;end=2026-01-18&amp;app=portal&amp;languages=1"'
        in html
    )
    # Another portal's unit is not offered, and naming it is refused.
    assert str(portal_b.id) not in html
    assert (await console.get("/console/reports", params={"unit_id": str(portal_b.id)})).status_code == 404
    assert (
        await console.get("/console/reports", params={"start": "2024-01-01", "end": "2026-01-01"})
    ).status_code == 422
    assert (await console.get("/console/reports", params={"end": "99999-01-01"})).status_code == 422

    exported = await console.get(
        "/console/reports/export.csv", params={"period": "week", "start": "2026-01-05", "end": "2026-01-18"}
    )
    assert exported.status_code == 200
    assert exported.content.startswith("\ufeff".encode())
    assert "Cổng Hà Nội" in exported.content.decode("utf-8")
    async with owner_engine.connect() as conn:
        via = (
            (
                await conn.execute(
                    text("SELECT details ->> 'via' FROM audit_log WHERE action = 'report.exported'")
                )
            )
            .scalars()
            .all()
        )
    assert via == ["console"]


async def test_the_language_split_is_on_until_the_form_is_sent_without_it(console, owner_engine):
    _, _, _, editor_a = await portals_with_pushes(owner_engine)
    await console_sign_in(console, editor_a)
    weeks = {"start": "2026-01-05", "end": "2026-01-18"}

    first = (await console.get("/console/reports", params=weeks)).text  # a link, no form sent yet
    assert 'data-testid="report-language"' in first and 'value="1" checked' in first
    # The form always sends its period; without the box ticked, no split.
    sent = (await console.get("/console/reports", params={**weeks, "period": "week"})).text
    assert 'data-testid="report-language"' not in sent and 'value="1" checked' not in sent
    assert "languages=1" not in sent  # nor in its CSV link
    ticked = (
        await console.get("/console/reports", params={**weeks, "period": "week", "languages": "1"})
    ).text
    assert 'data-testid="report-language"' in ticked


async def test_report_page_speaks_english_on_request(console, owner_engine):
    _, _, _, editor_a = await portals_with_pushes(owner_engine)
    token = await console_sign_in(console, editor_a)
    vi = await console.get("/console/reports")
    assert "Báo cáo thông báo đẩy" in vi.text and "Tỷ lệ mở" in vi.text
    await console.post("/console/lang", data={"csrf_token": token, "language": "en", "next": "/reports"})
    en = await console.get("/console/reports")
    assert "Push reports" in en.text and "Opening rate" in en.text
