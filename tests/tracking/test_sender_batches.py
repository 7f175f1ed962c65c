"""The sender writes a chunk's notifications set-based (tracking/sender.py, notifications.service.
create_prepared_many): whatever the chunk boundaries and however many senders run, each ledger
row is sent once, in exactly one notification that names its recipient, with that notification's
audit row, inbox fan-out and inbox item."""

from __future__ import annotations

import asyncio

from sqlalchemy import select, text

from core import clock
from core.after_commit import committing
from core.db import transaction
from inbox.models import InboxItem
from tests.notifications.helpers import run_workers
from tests.support.factories import sign_in
from tests.tracking.helpers import (
    confirm_all,
    ledger,
    run_sender,
    run_sweep,
    set_clock,
    task,
    tracking_notifications,
    upsert,
)
from tracking import sender
from tracking.models import Reminder
from tracking.rules import get_rules


async def two_people_tasks(client, org, prefix: str, count: int, **fields) -> None:  # type: ignore[no-untyped-def]
    people = [org.officer.username, org.officer2.username]
    tasks = [task(org, f"{prefix}_{i}", responsible_users=people, **fields) for i in range(count)]
    assert (await upsert(client, org, *tasks)).status_code == 200


async def assert_each_row_sent_once() -> list[Reminder]:
    """Every ledger row is sent, and each notification's audience is exactly the recipients of
    the rows that point to it, all of one subject: no one is reminded twice or left out."""
    rows = await ledger()
    assert rows and {r.status for r in rows} == {"sent"}
    notifications = {
        n.id: n for n in await tracking_notifications() if n.kind.startswith("tracking.reminder")
    }
    by_notification: dict[object, list[Reminder]] = {}
    for row in rows:
        by_notification.setdefault(row.notification_id, []).append(row)
    assert by_notification.keys() == notifications.keys()
    for notification_id, members in by_notification.items():
        audience = notifications[notification_id].audience["users"]  # type: ignore[index]
        assert sorted(audience) == sorted(str(r.user_id) for r in members)
        assert len({(r.subject_id, r.rule, r.occurrence) for r in members}) == 1
    async with transaction() as session:
        audited = set(
            (
                await session.execute(
                    text("SELECT object_id FROM audit_log WHERE action = 'notification.created'")
                )
            ).scalars()
        )
        fanouts = set((await session.execute(text("SELECT notification_id FROM inbox_fanouts"))).scalars())
    assert {str(n) for n in notifications} <= audited
    assert set(notifications) <= fanouts
    return rows


async def test_chunks_that_split_a_task_s_recipients_still_send_each_row_once(
    client, org, worker_ctx, use_rules
):
    use_rules(deadline_offsets=[0])
    await two_people_tasks(client, org, "CH", 7, deadline="2026-12-14")
    await confirm_all()
    set_clock("2026-12-14 08:00:30")
    assert (await run_sweep()).pushes == 14
    # Chunks of 3 rows: every other chunk boundary falls between a task's two recipients.
    claimed = []
    while True:
        async with committing() as session:  # as the job does: its jobs are queued after commit
            count = await sender.send_pending(session, now=clock.utcnow(), rules=get_rules(), limit=3)
        if count == 0:
            break
        claimed.append(count)
    assert claimed == [3, 3, 3, 3, 2]
    rows = await assert_each_row_sent_once()
    # One notification per task and chunk: a task whose two rows fall in two chunks gets two.
    pieces = {(r.subject_id, index // 3) for index, r in enumerate(sorted(rows, key=lambda r: r.id))}
    assert len({r.notification_id for r in rows}) == len(pieces) > 7
    # The inbox fan-out jobs queued after each commit write one item per recipient.
    await run_workers(worker_ctx)
    async with transaction() as session:
        items = set((await session.execute(select(InboxItem.reader_id, InboxItem.notification_id))).all())
    assert {(r.user_id, r.notification_id) for r in rows} <= items
    headers = await sign_in(client, org.officer2)
    inbox = await client.get("/v1/inbox", params={"app": "tracking"}, headers=headers)
    reminders = [i for i in inbox.json()["items"] if i["kind"] == "tracking.reminder.deadline"]
    assert len(reminders) == 7


async def test_concurrent_senders_and_a_rerun_never_send_twice(client, org, use_rules):
    use_rules(deadline_offsets=[0])
    await two_people_tasks(client, org, "CC", 40, deadline="2026-12-14")
    await confirm_all()
    set_clock("2026-12-14 08:00:30")
    assert (await run_sweep()).pushes == 80
    # Two senders started together, in small chunks so that they interleave many times.
    totals = await asyncio.gather(run_sender(limit=7), run_sender(limit=5))
    assert sum(totals) == 80 and all(totals)
    rows = await assert_each_row_sent_once()
    # A re-run (a sender job queued twice, or the next minute's) finds nothing to send.
    assert await asyncio.gather(run_sender(), run_sender()) == [0, 0]
    assert [(r.id, r.status, r.notification_id) for r in await ledger()] == [
        (r.id, r.status, r.notification_id) for r in rows
    ]
    reminders = [n for n in await tracking_notifications() if n.kind.startswith("tracking.reminder")]
    assert len(reminders) == len({r.notification_id for r in rows})


async def test_a_chunk_that_fails_sends_nothing_and_is_claimed_again(client, org, use_rules):
    use_rules(deadline_offsets=[0])
    await two_people_tasks(client, org, "RB", 3, deadline="2026-12-14")
    await confirm_all()
    set_clock("2026-12-14 08:00:30")
    await run_sweep()
    before = len(await tracking_notifications())
    try:
        async with transaction() as session:
            assert await sender.send_pending(session, now=clock.utcnow(), rules=get_rules(), limit=10) == 6
            raise RuntimeError("the worker dies before the commit")
    except RuntimeError:
        pass
    assert {r.status for r in await ledger()} == {"pending"}
    assert len(await tracking_notifications()) == before
    assert await run_sender() == 6
    await assert_each_row_sent_once()


async def test_done_tasks_in_a_chunk_are_dropped_and_the_others_sent(client, org, use_rules):
    use_rules(deadline_offsets=[0])
    await two_people_tasks(client, org, "DR", 4, deadline="2026-12-14")
    await confirm_all()
    set_clock("2026-12-14 08:00:30")
    await run_sweep()
    # Finished after the sweep wrote its reminders, before the sender ran.
    finished = task(org, "DR_1", responsible_users=[org.officer.username, org.officer2.username])
    finished.update(version=2, deadline="2026-12-14", result_status="done")
    assert (await upsert(client, org, finished)).status_code == 200
    assert await run_sender() == 8
    rows = await ledger()
    assert sorted(r.status for r in rows) == ["dropped"] * 2 + ["sent"] * 6
    assert all(r.notification_id is None for r in rows if r.status == "dropped")
    assert len({r.notification_id for r in rows if r.status == "sent"}) == 3


async def test_quiet_hours_hold_one_recipient_while_the_chunk_goes_to_the_others(client, org, use_rules):
    use_rules(deadline_offsets=[0])
    await two_people_tasks(client, org, "QH", 5, deadline="2026-12-14")
    await confirm_all()
    set_clock("2026-12-14 07:00:00")
    headers = await sign_in(client, org.officer)
    quiet = await client.put(
        "/v1/tracking/preferences", json={"quiet_start": "07:30", "quiet_end": "09:30"}, headers=headers
    )
    assert quiet.status_code == 200, quiet.text
    set_clock("2026-12-14 08:00:30")
    assert (await run_sweep()).pushes == 5
    assert await run_sender(limit=2) == 5
    first = await assert_each_row_sent_once()
    assert {r.user_id for r in first} == {org.officer2.id}
    set_clock("2026-12-14 09:29:30")  # still quiet
    assert (await run_sweep()).pushes == 0
    set_clock("2026-12-14 09:30:30")
    assert (await run_sweep()).pushes == 5
    assert await run_sender(limit=2) == 5
    rows = await assert_each_row_sent_once()
    assert sorted(r.user_id == org.officer.id for r in rows) == [False] * 5 + [True] * 5


async def test_reminders_wait_while_the_tracking_app_is_switched_off(client, org, use_rules):
    # An operator switched the app off (console, Apps page): claiming its reminders would fail the
    # chunk at every run (422 app_disabled); they wait, pending, and go once it is back on.
    from devices import apps

    async def switch(enabled: bool) -> None:
        async with transaction() as session:
            await session.execute(
                text("UPDATE apps SET enabled = :enabled WHERE code = 'tracking'"), {"enabled": enabled}
            )
        apps.invalidate()

    use_rules(deadline_offsets=[0])
    await switch(False)
    # The tracking system's intake is still taken (the tasks are stored), without pushes.
    await two_people_tasks(client, org, "OFF", 3, deadline="2026-12-14")
    assert await tracking_notifications() == []
    await confirm_all()
    set_clock("2026-12-14 08:00:30")
    await run_sweep()
    assert await run_sender() == 0
    assert {r.status for r in await ledger()} == {"pending"}
    assert await tracking_notifications() == []
    await switch(True)
    assert await run_sender() == 6
    await assert_each_row_sent_once()
