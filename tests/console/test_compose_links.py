"""The console's compose form holds links to the API's rule (issue 12, item 7): the form is
parsed into the same request model, and links are shown as escaped text, never as an href."""

from __future__ import annotations

from auth.roles import Role
from tests.console.support import console_sign_in
from tests.console.test_news_pages import draft_form
from tests.support.factories import make_account, make_unit
from tests.support.links import SAFE_LINKS, UNSAFE_LINKS

# The form trims what it reads, so surrounding whitespace is removed there, not refused.
TRIMMED = {"leading-space", "leading-tab"}


async def test_unsafe_links_in_the_compose_form_are_refused_and_nothing_is_stored(console):
    editor = await make_account(role=Role.EDITOR, unit=await make_unit())
    token = await console_sign_in(console, editor)
    for name, link in UNSAFE_LINKS.items():
        if name in TRIMMED:
            continue
        response = await console.post("/console/news/new", data=draft_form(token, deep_link=link))
        assert response.status_code == 422, (name, response.status_code)
        assert "deep_link" in response.text, name
        preview = await console.post(
            "/console/news/preview", data=draft_form(token, deep_link=link), headers={"HX-Request": "true"}
        )
        assert 'data-testid="preview-error"' in preview.text, name
    listing = await console.get("/console/news")
    assert "Tin mới" not in listing.text


async def test_allowed_links_are_stored_and_shown_as_text(console):
    editor = await make_account(role=Role.EDITOR, unit=await make_unit())
    token = await console_sign_in(console, editor)
    for name, link in {**SAFE_LINKS, "trimmed": " chuong-portal://article/9 "}.items():
        created = await console.post("/console/news/new", data=draft_form(token, deep_link=link))
        assert created.status_code == 303, (name, created.text[:300])
        page = await console.get(created.headers["location"])
        assert link.strip().replace("&", "&amp;") in page.text, name
        assert f'href="{link.strip()}' not in page.text, name
