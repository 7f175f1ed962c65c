"""Console forms and filters are held to the API's bounds (core/types.py, issue 12 item 4): a
date the database or Python's date arithmetic cannot take is a 422 page, never a 500."""

from __future__ import annotations

import pytest

from auth.roles import Role
from tests.console.support import console_sign_in
from tests.console.test_news_pages import draft_form
from tests.support.factories import make_account, make_unit


@pytest.mark.parametrize(
    "query", ["until=9999-12-31", "since=0001-01-01", "since=9999-12-31", "until=0001-01-01"]
)
async def test_audit_filters_beyond_the_date_window_are_422(console, query):
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    await console_sign_in(console, admin)
    for path in ("/console/admin/audit", "/console/admin/audit/export.csv"):
        response = await console.get(f"{path}?{query}")
        assert response.status_code == 422, (path, query, response.text[:300])


@pytest.mark.parametrize("send_at", ["9999-12-31T23:59", "0001-01-01T00:00", "2999-01-01T08:00"])
async def test_a_send_time_beyond_the_window_in_the_compose_form_is_422(console, send_at):
    editor = await make_account(role=Role.EDITOR, unit=await make_unit())
    token = await console_sign_in(console, editor)
    response = await console.post("/console/news/new", data=draft_form(token, send_at=send_at))
    assert response.status_code == 422, response.text[:300]
