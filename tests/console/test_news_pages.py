"""News pages over HTTP: compose, live preview, reject → edit → resubmit, approval step-up."""

from __future__ import annotations

import httpx

from auth.roles import Role
from core import clock
from tests.console.support import console_sign_in
from tests.support.factories import make_account, make_unit


def draft_form(token: str, **overrides: str) -> dict[str, str]:
    form = {
        "csrf_token": token,
        "article_id": "a-7",
        "deep_link": "chuong-portal://article/7",
        "title_vi": "Tin mới",
        "body_vi": "Nội dung",
        "title_en": "News",
        "body_en": "Body",
        "ttl_hours": "6",
        "action": "save",
    }
    form.update(overrides)
    return form


async def test_preview_reports_bytes_and_validation_without_storing(console):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    token = await console_sign_in(console, editor)
    preview = await console.post(
        "/console/news/preview", data=draft_form(token), headers={"HX-Request": "true"}
    )
    assert preview.status_code == 200
    assert "/ 4096 B" in preview.text and 'data-testid="preview-error"' not in preview.text
    huge = await console.post(
        "/console/news/preview", data=draft_form(token, body_vi="ư" * 3000), headers={"HX-Request": "true"}
    )
    assert 'data-testid="preview-error"' in huge.text and "too-big" in huge.text
    missing_vi = await console.post("/console/news/new", data=draft_form(token, title_vi="", body_vi=""))
    assert missing_vi.status_code == 422
    listing = await console.get("/console/news")
    assert "Tin mới" not in listing.text  # nothing was stored


async def test_reject_edit_resubmit_and_approval_needs_a_fresh_code(console, app):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    publisher = await make_account(role=Role.PUBLISHER, unit=unit)
    token = await console_sign_in(console, editor)
    created = await console.post("/console/news/new", data=draft_form(token, action="submit"))
    assert created.status_code == 303
    item_path = created.headers["location"]
    # An editor cannot approve.
    refused = await console.post(
        f"{item_path}/approve", data={"csrf_token": token, "totp_code": editor.code()}
    )
    assert refused.status_code == 403

    transport = httpx.ASGITransport(app=app, client=("203.0.113.22", 52002))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as desk:
        desk_token = await console_sign_in(desk, publisher)
        rejected = await desk.post(
            f"{item_path}/reject", data={"csrf_token": desk_token, "reason": "Sửa tiêu đề"}
        )
        assert rejected.status_code == 303

        page = await console.get(f"{item_path}/edit")
        assert "Sửa tiêu đề" in page.text and 'value="Tin mới"' in page.text
        edited = await console.post(
            f"{item_path}/edit", data=draft_form(token, title_vi="Tin mới (đã sửa)", action="submit")
        )
        assert edited.status_code == 303

        clock.advance(301)  # the sign-in's verification is no longer a fresh step-up
        stale = await desk.post(f"{item_path}/approve", data={"csrf_token": desk_token})
        assert stale.status_code == 403 and "step_up_required" in stale.text
        approved = await desk.post(
            f"{item_path}/approve", data={"csrf_token": desk_token, "totp_code": publisher.code()}
        )
        assert approved.status_code == 303 and approved.headers["location"].endswith("/delivery")
        delivery = await desk.get(approved.headers["location"])
        assert delivery.status_code == 200 and "sending" in delivery.text
        assert "Tin mới (đã sửa)" in delivery.text
