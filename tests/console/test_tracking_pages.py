"""Tracking pages for leaders over HTTP: counts by status colour per unit, the overdue list and
the task list of one's subtree only, what was reminded when, permissions, escaping."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from playwright.async_api import BrowserContext, expect
from sqlalchemy import select

from auth.roles import Role
from console.templating import VN_TIME
from core.db import transaction
from tests.console.browser import sign_in, snap
from tests.console.support import console_sign_in
from tests.support.factories import make_account, make_unit
from tests.support.factories import sign_in as sign_in_api
from tests.tracking.helpers import Org, confirm_all, ledger, make_org, set_clock, task, tick, upsert
from tracking.models import Task
from tracking.status import COLOURS


@pytest.fixture
async def org(client: httpx.AsyncClient) -> Org:
    return await make_org(client)


async def task_id(code: str) -> uuid.UUID:
    async with transaction() as session:
        found: uuid.UUID = (await session.execute(select(Task.id).where(Task.code == code))).scalar_one()
        return found


def cell(html: str, unit_id: object, status: str) -> str:
    row = re.search(rf'<tr data-unit="{unit_id}">(.*?)</tr>', html, re.S)
    assert row, f"no row for unit {unit_id}"
    value = re.search(rf'<td data-status="{status}">(?:<a [^>]*>)?(\d+)', row.group(1))
    assert value, status
    return value.group(1)


def codes(html: str, testid: str) -> set[str]:
    table = re.search(rf'data-testid="{testid}">(.*?)</table>', html, re.S)
    assert table, testid
    return set(re.findall(r'<tr data-task="([^"]+)">', table.group(1)))


async def test_a_leader_sees_counts_and_overdue_tasks_of_their_subtree_only(console, client, app, org):
    other = await make_unit(parent=org.central, name="Tỉnh khác")
    other_officer = await make_account(role=Role.TASK_OFFICER, unit=other)
    response = await upsert(
        client,
        org,
        task(org, "P_LATE", deadline="2026-12-14"),
        task(org, "P_SOON", deadline="2026-12-16"),
        task(org, "P_LATER", deadline="2027-06-30"),
        task(
            org,
            "P_DONE",
            deadline="2026-12-01",
            result_status="done",
            completed_at="2026-11-30T10:00:00+07:00",
        ),
        task(
            org,
            "O_LATE",
            deadline="2026-12-14",
            lead_unit=other.code,
            responsible_users=[other_officer.username],
        ),
    )
    assert response.status_code == 200, response.text
    await confirm_all()
    set_clock("2026-12-15 09:00:00")

    await console_sign_in(console, org.leader)
    page = await console.get("/console/tracking")
    assert page.status_code == 200
    assert 'href="/console/tracking"' in page.text  # the nav link
    assert "Quá hạn" in page.text and "Đúng hạn" in page.text  # Vietnamese by default
    assert all(f'fill="{colour}"' in page.text for colour in COLOURS.values())
    counts = {s: cell(page.text, org.province.id, s) for s in COLOURS}
    assert counts == {"on_time": "1", "due_soon": "1", "overdue": "1", "done": "1"}
    assert f'data-unit="{other.id}"' not in page.text
    assert codes(page.text, "tracking-overdue") == {"P_LATE"}

    listing = await console.get("/console/tracking/tasks")
    assert codes(listing.text, "tracking-tasks") == {"P_LATE", "P_SOON", "P_LATER", "P_DONE"}
    overdue = await console.get("/console/tracking/tasks", params={"status": "overdue", "unit": ""})
    assert codes(overdue.text, "tracking-tasks") == {"P_LATE"}
    by_unit = await console.get("/console/tracking/tasks", params={"unit": str(other.id)})
    assert codes(by_unit.text, "tracking-tasks") == set()
    foreign = await console.get(f"/console/tracking/tasks/{await task_id('O_LATE')}")
    assert foreign.status_code == 404 and "O_LATE" not in foreign.text
    bad = await console.get("/console/tracking/tasks", params={"status": "late"})
    assert bad.status_code == 400

    # The leader of the parent unit sees both provinces: the filter above is not vacuous.
    transport = httpx.ASGITransport(app=app, client=("203.0.113.23", 52003))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as centre:
        await console_sign_in(centre, org.central_leader)
        wide = await centre.get("/console/tracking")
        assert cell(wide.text, other.id, "overdue") == "1"
        assert codes(wide.text, "tracking-overdue") == {"P_LATE", "O_LATE"}


async def test_the_reminder_history_shows_what_the_sweep_sent(console, client, org):
    await upsert(client, org, task(org, "W1", deadline="2026-12-14"), task(org, "W2", deadline="2027-06-30"))
    await confirm_all()
    set_clock("2026-12-03 08:00:30")
    first = await tick()
    set_clock("2026-12-09 08:01:00")
    second = await tick()
    sent = [r for r in first + second if r.subject_id == await task_id("W1")]
    assert sorted(r.occurrence.split(":")[0] for r in sent) == ["d3", "d7"]

    await console_sign_in(console, org.leader)
    page = await console.get(f"/console/tracking/tasks/{await task_id('W1')}")
    assert page.status_code == 200
    table = re.search(r'data-testid="tracking-reminders">(.*?)</table>', page.text, re.S)
    assert table
    rows = re.findall(r'<tr data-rule="([^"]+)" data-occurrence="([^"]+)">', table.group(1))
    assert sorted(rows) == sorted(("deadline", r.occurrence) for r in sent)
    for r in sent:
        assert r.sent_at is not None
        local = r.sent_at.astimezone(VN_TIME)
        assert local.strftime("%Y-%m-%d %H:%M:%S") in table.group(1)
    assert "Nhắc hạn" in table.group(1) and f"Nguyễn Văn {org.officer.username}" in table.group(1)
    # Another task of the same unit has its own (empty) history.
    other = await console.get(f"/console/tracking/tasks/{await task_id('W2')}")
    assert "data-rule=" not in other.text
    assert len(await ledger()) == len(first) + len(second)

    # English on request, from the same catalogue.
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    await console.post(
        "/console/lang", data={"csrf_token": token.group(1), "language": "en", "next": "/home"}
    )
    english = await console.get(f"/console/tracking/tasks/{await task_id('W1')}")
    assert "What was reminded when" in english.text and "Deadline reminder" in english.text


async def test_accounts_without_the_permissions_are_refused(console, client, app, org):
    await upsert(client, org, task(org, "R1"))
    editor = await make_account(role=Role.EDITOR, unit=org.province)
    await console_sign_in(console, editor)
    home = await console.get("/console/home")
    assert "/console/tracking" not in home.text
    for path in (
        "/console/tracking",
        "/console/tracking/tasks",
        f"/console/tracking/tasks/{await task_id('R1')}",
    ):
        refused = await console.get(path)
        assert refused.status_code == 403, path
        assert "R1" not in refused.text

    # A task officer reads tasks (tasks:read) but not the unit dashboard (dashboard:read), as in the API.
    transport = httpx.ASGITransport(app=app, client=("203.0.113.24", 52004))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as officer:
        await console_sign_in(officer, org.officer)
        assert (await officer.get("/console/tracking")).status_code == 403
        mine = await officer.get("/console/tracking/tasks", params={"mine": "1"})
        assert mine.status_code == 200 and codes(mine.text, "tracking-tasks") == {"R1"}


async def test_a_script_in_a_task_title_renders_inert(console, client, org):
    title = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    await upsert(client, org, task(org, "XSS", name=title, deadline="2026-12-14"))
    set_clock("2026-12-15 09:00:00")
    await console_sign_in(console, org.leader)
    for path in (
        "/console/tracking",
        "/console/tracking/tasks",
        f"/console/tracking/tasks/{await task_id('XSS')}",
    ):
        page = await console.get(path)
        assert page.status_code == 200
        assert title not in page.text and "<script>alert" not in page.text and "<img src=x" not in page.text
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text, path


async def test_in_a_browser_the_leader_goes_from_the_overdue_list_to_the_reminder_history(
    live, browser_context: BrowserContext, client, org
):
    title = "<script>window.__pwned = 1</script> Báo cáo quý IV"
    await upsert(client, org, task(org, "B_LATE", name=title, deadline="2026-12-14"))
    await confirm_all()
    set_clock("2026-12-15 08:00:30")  # the first overdue warning goes to the officer
    assert [r.rule for r in await tick()] == ["overdue"]
    page = await browser_context.new_page()
    problems: list[str] = []
    page.on(
        "console",
        lambda message: (
            problems.append(f"{message.text} {message.location.get('url')}")
            if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico")
            else None
        ),
    )
    page.on("dialog", lambda dialog: problems.append(dialog.message))
    await sign_in(page, live, org.leader)
    await page.click("nav >> text=Theo dõi nhiệm vụ")
    await expect(page.get_by_test_id("tracking-counts")).to_contain_text("Tỉnh ủy")
    await expect(page.get_by_test_id("tracking-overdue")).to_contain_text(
        "<script>window.__pwned = 1</script>"
    )
    await snap(page, "tracking")
    await page.get_by_test_id("tracking-overdue").get_by_role("link").first.click()
    await expect(page.get_by_test_id("tracking-reminders")).to_contain_text("Cảnh báo quá hạn")
    await expect(page.get_by_test_id("tracking-reminders")).to_contain_text("2026-12-15 08:0")
    await snap(page, "tracking-task")
    assert await page.evaluate("window.__pwned") is None
    assert problems == []  # no dialog, no script error, no CSP violation report


async def test_a_refused_task_shows_its_badge_and_reason_to_the_leader(console, client, org):
    await upsert(client, org, task(org, "REF_P"), task(org, "REF_Q"))
    officer = await sign_in_api(client, org.officer)
    reason = "Thuộc thẩm quyền của Sở Y tế <b>không</b> phải Tỉnh ủy"
    response = await client.post(
        f"/v1/tracking/tasks/{await task_id('REF_P')}/refuse",
        json={"code": "outside_authority", "reason": reason},
        headers=officer,
    )
    assert response.status_code == 200, response.text

    await console_sign_in(console, org.leader)
    listing = await console.get("/console/tracking/tasks")
    row = re.search(r'<tr data-task="REF_P">(.*?)</tr>', listing.text, re.S)
    assert row and 'data-refused="outside_authority"' in row.group(1)
    assert "Từ chối nhận: không thuộc thẩm quyền" in row.group(1)
    other = re.search(r'<tr data-task="REF_Q">(.*?)</tr>', listing.text, re.S)
    assert other and "data-refused" not in other.group(1)

    page = await console.get(f"/console/tracking/tasks/{await task_id('REF_P')}")
    refusal = re.search(r'data-testid="tracking-refusal">(.*?)</tr>', page.text, re.S)
    assert refusal and "không thuộc thẩm quyền" in refusal.group(1)
    assert "Thuộc thẩm quyền của Sở Y tế &lt;b&gt;không&lt;/b&gt; phải Tỉnh ủy" in refusal.group(1)
    assert "<b>không</b>" not in page.text
    unanswered = await console.get(f"/console/tracking/tasks/{await task_id('REF_Q')}")
    assert 'data-testid="tracking-refusal"' not in unanswered.text

    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    await console.post(
        "/console/lang", data={"csrf_token": token.group(1), "language": "en", "next": "/home"}
    )
    english = await console.get(f"/console/tracking/tasks/{await task_id('REF_P')}")
    found = re.search(r"data-refused=[^>]*>(.*?)</span>", english.text, re.S)
    assert found and found.group(1) == "Refused: outside the unit's authority"
