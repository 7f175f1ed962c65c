"""The four-eyes workflow (D-04): draft → submitted → approved (another publisher, fresh TOTP)
→ scheduled | sending; reject back to the author; unit scoping; every transition audited."""

import datetime as dt

from sqlalchemy import text

from core import clock
from tests.news.helpers import approve, create, draft, fcm, make_desk, news_item, readers, submitted
from tests.notifications.helpers import run_workers
from workers.news_jobs import news_tick


async def test_author_cannot_approve_own_item(client, redis):
    desk = await make_desk(client)
    item = await create(client, desk.headers["publisher"])
    await client.post(f"/v1/news/{item['id']}/submit", headers=desk.headers["publisher"], json={})
    own = await client.post(f"/v1/news/{item['id']}/approve", headers=desk.headers["publisher"], json={})
    assert own.status_code == 403 and own.json()["error"]["code"] == "four_eyes_required"
    other = await client.post(
        f"/v1/news/{item['id']}/approve", headers=desk.headers["other_publisher"], json={}
    )
    assert other.status_code == 200, other.text
    assert other.json()["status"] == "sending"


async def test_the_submitter_cannot_approve_either(client, redis):
    desk = await make_desk(client)
    item = await create(client, desk.headers["reporter"])
    await client.post(f"/v1/news/{item['id']}/submit", headers=desk.headers["publisher"], json={})
    response = await approve(client, desk, item["id"])
    assert response.status_code == 403 and response.json()["error"]["code"] == "four_eyes_required"


async def test_approval_without_a_fresh_totp_is_refused(client, redis):
    desk = await make_desk(client)
    item_id = await submitted(client, desk)
    clock.advance(301)
    stale = await approve(client, desk, item_id)
    assert stale.status_code == 403 and stale.json()["error"]["code"] == "step_up_required"
    verify = await client.post(
        "/v1/auth/mfa/verify", headers=desk.headers["publisher"], json={"code": desk.publisher.code()}
    )
    assert verify.status_code == 204
    fresh = await approve(client, desk, item_id)
    assert fresh.status_code == 200, fresh.text


async def test_editors_and_reporters_cannot_approve(client, redis):
    desk = await make_desk(client)
    item_id = await submitted(client, desk)
    for role in ("editor", "reporter"):
        response = await client.post(f"/v1/news/{item_id}/approve", headers=desk.headers[role], json={})
        assert response.status_code == 403, role


async def test_reject_goes_back_to_the_author_with_the_reason(client, redis, owner_engine):
    desk = await make_desk(client)
    item_id = await submitted(client, desk)
    no_reason = await client.post(f"/v1/news/{item_id}/reject", headers=desk.headers["publisher"], json={})
    assert no_reason.status_code == 422
    rejected = await client.post(
        f"/v1/news/{item_id}/reject", headers=desk.headers["publisher"], json={"reason": "Sai tên riêng"}
    )
    assert rejected.status_code == 200
    assert (rejected.json()["status"], rejected.json()["rejected_reason"]) == ("rejected", "Sai tên riêng")
    # The author sees it in their list, fixes it and submits again.
    mine = await client.get("/v1/news?status=rejected", headers=desk.headers["reporter"])
    assert [i["id"] for i in mine.json()] == [item_id]
    fixed = await client.put(
        f"/v1/news/{item_id}",
        headers=desk.headers["reporter"],
        json=draft(title={"vi": "Đã sửa"}, body={"vi": "x"}),
    )
    assert fixed.status_code == 200, fixed.text
    again = await client.post(f"/v1/news/{item_id}/submit", headers=desk.headers["reporter"], json={})
    assert again.json()["status"] == "submitted" and again.json()["rejected_reason"] is None
    # Approved items are no longer editable.
    assert (await approve(client, desk, item_id)).status_code == 200
    late = await client.put(f"/v1/news/{item_id}", headers=desk.headers["reporter"], json=draft())
    assert late.status_code == 409

    async with owner_engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT action, actor_id, details->>'reason' AS reason FROM audit_log "
                    "WHERE object_type = 'news_item' AND object_id = :id ORDER BY seq"
                ),
                {"id": item_id},
            )
        ).all()
    actions = [row.action for row in rows]
    assert actions == [
        "news.created",
        "news.submitted",
        "news.rejected",
        "news.edited",
        "news.submitted",
        "news.approved",
        "news.sending",
    ]
    rejected_row = rows[2]
    assert rejected_row.reason == "Sai tên riêng" and rejected_row.actor_id == desk.publisher.id


async def test_staff_act_only_within_their_portal_unless_central(client, redis):
    central = await make_desk(client)
    province = await make_desk(client, parent=central.unit)
    neighbour = await make_desk(client, parent=central.unit)
    own = await client.post(
        "/v1/sections",
        json={"code": "tin-tinh", "names": {"vi": "Tin tỉnh"}},
        headers=province.headers["editor"],
    )
    assert own.status_code == 201, own.text
    item_id = await submitted(client, province, audience={"sections": ["tin-tinh"]})
    # Another province's publisher does not even see it.
    assert (
        await client.get(f"/v1/news/{item_id}", headers=neighbour.headers["publisher"])
    ).status_code == 404
    assert (await approve(client, neighbour, item_id)).status_code == 404
    assert (await client.get("/v1/news", headers=neighbour.headers["editor"])).json() == []
    # The central board above it does.
    assert (await client.get(f"/v1/news/{item_id}", headers=central.headers["publisher"])).status_code == 200
    # A component portal reaches its own sections only: never every reader, nor national
    # sections, nor another portal's.
    everyone = await client.post("/v1/news", json=draft(), headers=province.headers["editor"])
    assert everyone.status_code == 403 and everyone.json()["error"]["code"] == "broadcast_not_allowed"
    for code, headers in (("van-kien", province.headers), ("tin-tinh", neighbour.headers)):
        foreign = await client.post(
            "/v1/news", json=draft(audience={"sections": [code]}), headers=headers["editor"]
        )
        assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "section_not_yours"
    # The central board may send to a province's section.
    central_item = await client.post(
        "/v1/news", json=draft(audience={"sections": ["tin-tinh"]}), headers=central.headers["editor"]
    )
    assert central_item.status_code == 201, central_item.text


async def test_schedule_in_the_past_or_without_a_time_zone_is_refused(client, redis):
    desk = await make_desk(client)
    naive = await client.post(
        "/v1/news", json=draft(send_at="2030-01-01T08:00:00"), headers=desk.headers["editor"]
    )
    assert naive.status_code == 422
    past = (clock.utcnow() - dt.timedelta(minutes=1)).isoformat()
    in_past = await client.post("/v1/news", json=draft(send_at=past), headers=desk.headers["editor"])
    assert in_past.status_code == 422 and in_past.json()["error"]["code"] == "send_at_past"
    item_id = await submitted(client, desk)
    assert (await approve(client, desk, item_id, send_at="2030-01-01T08:00:00")).status_code == 422
    assert (await approve(client, desk, item_id, send_at=past)).status_code == 422


async def test_scheduled_item_is_released_by_the_job_when_its_time_comes(client, emulator, worker_ctx):
    [(_, token, _)] = phone = fcm(1)
    await readers(phone)
    desk = await make_desk(client)
    item_id = await submitted(client, desk)
    send_at = (clock.utcnow() + dt.timedelta(hours=2)).astimezone(dt.timezone(dt.timedelta(hours=7)))
    scheduled = await approve(client, desk, item_id, send_at=send_at.isoformat())
    assert scheduled.status_code == 200, scheduled.text
    assert scheduled.json()["status"] == "scheduled" and scheduled.json()["notification_id"] is None

    # The deferred release job and the cron both find nothing due before the time.
    await run_workers(worker_ctx)
    assert await news_tick({}) == {"released": 0, "settled": 0}
    assert emulator.log.find(token=token) == []
    clock.advance(2 * 3600 + 1)
    assert await news_tick({}) == {"released": 1, "settled": 0}
    # (Access tokens have expired by now: read the row itself.)
    item = await news_item(item_id)
    assert item.status == "sending" and item.notification_id is not None and item.released_at is not None
    await run_workers(worker_ctx)
    assert len(emulator.log.find(token=token)) == 1
    assert await news_tick({}) == {"released": 0, "settled": 1}
    assert (await news_item(item_id)).status == "sent"


async def test_the_approval_audit_row_names_the_publisher_and_the_portal(client, redis, owner_engine):
    desk = await make_desk(client)
    item_id = await submitted(client, desk)
    approved = await approve(client, desk, item_id)
    assert approved.status_code == 200
    async with owner_engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT actor_id, on_behalf_of_id, unit_id FROM audit_log "
                    "WHERE action = 'news.approved' AND object_id = :id"
                ),
                {"id": item_id},
            )
        ).one()
    assert row.actor_id == desk.publisher.id and row.unit_id == desk.unit.id


async def test_a_scheduled_item_the_app_no_longer_takes_goes_back_and_the_others_still_go(client, redis):
    # At its send time the release found the portal no longer published in the item's language:
    # the refusal rolled back every release of the run, and of every run after it, so one item
    # held back all the others due with it, for ever.
    from sqlalchemy import select

    from auth.audit.models import AuditLog
    from auth.roles import Role
    from core.db import transaction
    from tests.support.factories import make_account, make_unit, sign_in

    desk = await make_desk(client)
    in_french = await submitted(
        client, desk, title={"vi": "Tin", "fr": "Nouvelle"}, body={"vi": "Nội dung", "fr": "Texte"}
    )
    in_vietnamese = await submitted(client, desk, title={"vi": "Tin"}, body={"vi": "Nội dung"})
    first = (clock.utcnow() + dt.timedelta(hours=1)).isoformat()
    second = (clock.utcnow() + dt.timedelta(hours=1, minutes=5)).isoformat()
    assert (await approve(client, desk, in_french, send_at=first)).status_code == 200
    assert (await approve(client, desk, in_vietnamese, send_at=second)).status_code == 200
    operator = await sign_in(client, await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit()))
    withdrawn = await client.patch(
        "/v1/apps/portal", json={"languages": ["vi", "en", "zh", "es", "ru"]}, headers=operator
    )
    assert withdrawn.status_code == 200, withdrawn.text

    clock.advance(2 * 3600)
    assert (await news_tick({}))["released"] == 1
    assert (await news_item(in_vietnamese)).notification_id is not None
    refused = await news_item(in_french)
    assert (refused.status, refused.notification_id) == ("rejected", None)
    assert "fr" in (refused.rejected_reason or "")
    async with transaction() as session:
        row = (
            await session.execute(
                select(AuditLog).where(AuditLog.action == "news.rejected", AuditLog.object_id == in_french)
            )
        ).scalar_one()
    assert row.details["code"] == "language_not_offered"
    # A new draft in a language the app does not offer is refused when written, not at its send time.
    late = await client.post(
        "/v1/news",
        json=draft(title={"vi": "Tin", "fr": "Nouvelle"}, body={"vi": "Nội dung", "fr": "Texte"}),
        headers=await sign_in(client, desk.editor),  # the morning's token has expired
    )
    assert late.status_code == 422 and late.json()["error"]["code"] == "language_not_offered"


async def test_a_scheduled_item_to_a_section_archived_since_is_not_sent(client, redis):
    # "Nothing is sent to an archived section": the release sent a scheduled item to the topic's
    # devices anyway, since only drafts, submissions and approvals checked the sections.
    from tests.support.factories import sign_in

    desk = await make_desk(client)
    editor = desk.headers["editor"]
    code = f"sec-{desk.unit.id.hex[:8]}"
    created = await client.post("/v1/sections", json={"code": code, "names": {"vi": "Mục"}}, headers=editor)
    assert created.status_code == 201, created.text
    item = await submitted(client, desk, audience={"sections": [code]})
    send_at = (clock.utcnow() + dt.timedelta(hours=1)).isoformat()
    assert (await approve(client, desk, item, send_at=send_at)).status_code == 200
    assert (await client.delete(f"/v1/sections/{code}", headers=editor)).status_code == 204

    clock.advance(2 * 3600)
    assert (await news_tick({}))["released"] == 0
    refused = await news_item(item)
    assert (refused.status, refused.notification_id) == ("rejected", None)
    assert code in (refused.rejected_reason or "") or "Sections" in (refused.rejected_reason or "")
    assert (await client.get(f"/v1/news/{item}", headers=await sign_in(client, desk.editor))).json()[
        "status"
    ] == "rejected"
