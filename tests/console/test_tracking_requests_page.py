"""The console's task page shows a task's update and correction requests (D-15): who asked, what,
by when, and the unit's answer; in Vietnamese and in English; escaped."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from sqlalchemy import select

from core.db import transaction
from tests.console.support import console_sign_in
from tests.support.factories import sign_in as sign_in_api
from tests.tracking.helpers import Org, make_org, set_clock, task, upsert
from tracking.models import Task


@pytest.fixture
async def org(client: httpx.AsyncClient) -> Org:
    return await make_org(client)


async def task_id(code: str) -> uuid.UUID:
    async with transaction() as session:
        found: uuid.UUID = (await session.execute(select(Task.id).where(Task.code == code))).scalar_one()
        return found


async def test_the_task_page_shows_open_requests_and_answers(console, client, org):
    set_clock("2026-12-07 09:00:00")
    await upsert(
        client,
        org,
        task(org, "CR_1", report={"status": "rejected", "reason": "Thiếu <b>số liệu</b> quý IV"}),
        task(org, "CR_2"),
    )
    target = await task_id("CR_1")
    approver = await sign_in_api(client, org.approver)
    asked = await client.post(
        f"/v1/tracking/tasks/{target}/requests",
        json={"kind": "update", "message": "Báo cáo tiến độ <script>x</script>"},
        headers=approver,
    )
    assert asked.status_code == 201, asked.text
    officer = await sign_in_api(client, org.officer)
    answered = await client.post(
        f"/v1/tracking/tasks/{target}/requests/{asked.json()['id']}/answer",
        json={"answer": "Đã đạt 80%", "result_status": "in_progress"},
        headers=officer,
    )
    assert answered.status_code == 200, answered.text

    set_clock("2026-12-11 09:00:00")  # the correction (due Thursday 10th) is now overdue
    await console_sign_in(console, org.leader)
    page = await console.get(f"/console/tracking/tasks/{target}")
    assert page.status_code == 200
    table = re.search(r'data-testid="tracking-requests">(.*?)</table>', page.text, re.S)
    assert table
    rows = dict(
        re.findall(r'<tr data-request="[^"]+" data-status="(\w+)" data-kind="(\w+)">', table.group(1))
    )
    assert rows == {"open": "correction", "answered": "update"}
    html = table.group(1)
    assert "Yêu cầu chỉnh sửa" in html and "báo cáo bị trả lại" in html and "Quá hạn" in html
    assert "Thiếu &lt;b&gt;số liệu&lt;/b&gt; quý IV" in html and "<b>số liệu</b>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>x" not in page.text
    assert "đã trả lời" in html and "Đã đạt 80%" in html and "Đang thực hiện" in html
    assert f"Nguyễn Văn {org.approver.username}" in html and f"Nguyễn Văn {org.officer.username}" in html
    empty = await console.get(f"/console/tracking/tasks/{await task_id('CR_2')}")
    assert "Chưa có yêu cầu nào." in empty.text

    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    await console.post(
        "/console/lang", data={"csrf_token": token.group(1), "language": "en", "next": "/home"}
    )
    english = await console.get(f"/console/tracking/tasks/{target}")
    assert "Requests for updates and corrections" in english.text
    assert "Correction requested" in english.text and "awaiting an answer" in english.text
