"""The language summary after a real pipeline run against the in-process emulator: the minutely
job folds the push once its sending has ended and not before, its devices per language are the
stats' (from the deliveries), receipts reported over the API carry the language the device was
sent the push in, and the push report is the same before the fold, after it, and after the
purge of its deliveries and receipts."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text

from core import workcalendar
from notifications import retention
from tests.notifications.helpers import broadcast, central_sender, run_workers
from tests.notifications.test_stats import apns, fcm, reader_device
from workers.report_jobs import summarize_languages


async def _summary(engine, notification_id: str) -> dict[str, tuple[int, ...]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT language, targeted, sent, invalid, failed, received, opened"
                " FROM notification_languages WHERE notification_id = :n"
            ),
            {"n": notification_id},
        )
        return {row[0]: tuple(row[1:]) for row in rows}


async def test_a_sent_push_is_folded_once_it_has_ended_and_its_report_survives_the_purge(
    client, emulator, worker_ctx, owner_engine
):
    plan = [
        ("android", fcm("ok"), "vi"),
        ("android", fcm("ok"), "en"),
        ("android", fcm("unregistered"), "vi"),  # invalid
        ("android", fcm("invalid-message"), "en"),  # failed
        ("ios", apns(), "ru"),  # no Russian text: sent in Vietnamese
        ("ios", apns(), "en"),
    ]
    credentials = [await reader_device(client, platform=p, token=t, locale=loc) for p, t, loc in plan]
    headers = await central_sender(client)
    notification_id = await broadcast(client, headers, priority="normal")

    # Not sent yet: nothing to fold.
    assert (await summarize_languages({}))["deliveries"] == 0
    await run_workers(worker_ctx)
    for index, event in [(0, "opened"), (1, "received"), (4, "opened"), (5, "received"), (5, "opened")]:
        answer = await client.post(
            f"/v1/inbox/{notification_id}/receipts", json={"event": event}, headers=credentials[index]
        )
        assert answer.status_code == 200, answer.text
    async with owner_engine.connect() as conn:
        languages = await conn.execute(
            text("SELECT language FROM receipts WHERE notification_id = :n ORDER BY language"),
            {"n": notification_id},
        )
        assert list(languages.scalars()) == ["en", "en", "vi", "vi"]  # the Russian phone's is vi

    # Reports count by the local day (Asia/Ho_Chi_Minh): from 17:00 UTC it is already tomorrow there.
    today = dt.datetime.now(workcalendar.TIMEZONE).date()
    params = {"period": "month", "start": today.isoformat(), "end": today.isoformat()}
    live = (await client.get("/v1/reports/pushes", params=params, headers=headers)).json()

    assert (await summarize_languages({})) == {"deliveries": 6, "complete": True}
    stats = (await client.get(f"/v1/notifications/{notification_id}/stats", headers=headers)).json()
    folded = await _summary(owner_engine, notification_id)
    assert folded == {
        language: (counts["targeted"], counts["sent"], counts["invalid"], counts["failed"], 0, 0)
        for language, counts in stats["by_language"].items()
    }
    assert folded == {"vi": (3, 2, 1, 0, 0, 0), "en": (3, 2, 0, 1, 0, 0)}
    assert (await client.get("/v1/reports/pushes", params=params, headers=headers)).json() == live

    # A year and more later: deliveries and receipts purged, the readers in the summary.
    await retention.purge(now=dt.datetime.now(dt.UTC) + dt.timedelta(days=400))
    assert await _summary(owner_engine, notification_id) == {
        "vi": (3, 2, 1, 0, 2, 2),
        "en": (3, 2, 0, 1, 2, 1),
    }
    after = (await client.get("/v1/reports/pushes", params=params, headers=headers)).json()
    assert after == live
    languages_rows = {row["key"]: row["figures"] for row in after["rows"] if row["breakdown"] == "language"}
    assert {
        k: (v["devices_targeted"], v["readers_reached"], v["readers_opened"])
        for k, v in languages_rows.items()
    } == {
        "vi": (3, 2, 2),
        "en": (3, 2, 1),
    }
