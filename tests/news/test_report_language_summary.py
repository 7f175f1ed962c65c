"""The reports' per-language summary (notifications/language_summary.py) on real rows: the split
adds up to the totals before and after the fold, survives the real purge of deliveries and
receipts, counts once when the fold runs twice at once, after a crash, or the purge stops between
batches, and loses or doubles no receipt arriving between the fold and the purge, even one being
written while the purge deletes."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import Counter

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.roles import Role
from core.config import Settings, get_settings
from core.db import transaction
from inbox.readers import Reader
from inbox.receipts import record_receipt
from notifications import language_summary, retention
from tests.news.report_rows import VN, Device, portals_with_pushes, push
from tests.support.factories import make_account, make_unit, sign_in

PARAMS = {"period": "week", "start": "2026-01-05", "end": "2026-01-18"}  # languages: on by default
LATER = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)  # past the deliveries' and the receipts' retention
FIGURES = (
    "devices_targeted",
    "devices_sent",
    "devices_invalid",
    "devices_failed",
    "readers_reached",
    "readers_opened",
)


def _by(body: dict, breakdown: str) -> dict[tuple[str, str, str, str], dict]:
    return {
        (row["period_start"], row["app"], row["unit_id"], row["key"]): row["figures"]
        for row in body["rows"]
        if row["breakdown"] == breakdown
    }


def _assert_split_adds_up(body: dict) -> None:
    totals = _by(body, "total")
    summed: dict[tuple[str, str, str], Counter[str]] = {}
    for (period, app, unit, _), figures in _by(body, "language").items():
        summed.setdefault((period, app, unit), Counter()).update({k: figures[k] for k in FIGURES})
    assert totals, "no rows"
    for (period, app, unit, _), figures in totals.items():
        assert dict(summed[(period, app, unit)]) == {k: figures[k] for k in FIGURES}, (period, app)


async def _summary(engine: AsyncEngine) -> dict[tuple[uuid.UUID, str], tuple[int, ...]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT notification_id, language, targeted, sent, invalid, failed, received, opened"
                " FROM notification_languages"
            )
        )
        return {(row[0], row[1]): tuple(row[2:]) for row in rows}


async def _report(client, headers: dict[str, str]) -> dict:
    response = await client.get("/v1/reports/pushes", params=PARAMS, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def _until_the_receipt_delete_waits(engine: AsyncEngine) -> None:
    """Until the purge's receipt delete waits for a row lock (the receipt being written)."""
    for _ in range(300):
        async with engine.connect() as conn:
            waiting = await conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query LIKE '%DELETE FROM receipts%'"
                )
            )
            if waiting.scalar_one():
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the purge never waited for the receipt being written")


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings = get_settings()
    monkeypatch.setattr(settings, "retention_batch_size", 2)
    return settings


async def test_the_split_adds_up_to_the_totals_before_and_after_the_fold_and_past_retention(
    client, owner_engine
):
    _, _, _, editor = await portals_with_pushes(owner_engine)
    headers = await sign_in(client, editor)
    live = await _report(client, headers)  # nothing folded yet: the live rows
    assert _by(live, "language"), "the split is on by default"
    _assert_split_adds_up(live)

    folded = await retention.summarize_languages(now=dt.datetime.now(dt.UTC), budget_seconds=30)
    assert folded == {"deliveries": 9, "complete": True}
    summarized = await _report(client, headers)
    assert summarized == live

    await retention.purge(now=LATER)
    async with owner_engine.connect() as conn:
        for table in ("deliveries", "receipts"):
            assert (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one() == 0
    assert await _report(client, headers) == live


async def test_a_device_deleted_before_the_fold_is_counted_under_unknown_and_the_split_still_adds_up(
    client, owner_engine
):
    unit = await make_unit(name="Cổng Đà Nẵng")
    editor = await make_account(role=Role.EDITOR, unit=unit)
    async with owner_engine.begin() as conn:
        notification = await push(
            conn,
            unit_id=unit.id,
            created=dt.datetime(2026, 1, 6, 9, tzinfo=VN),
            devices=[Device("vi", received=True, opened=True), Device("en", received=True), Device("zh")],
        )
        # The stale-device purge deletes a device: its delivery goes with it (ON DELETE CASCADE),
        # its receipt stays without a device.
        await conn.execute(
            text(
                "DELETE FROM devices WHERE id = (SELECT device_id FROM deliveries"
                " WHERE notification_id = :n AND language = 'en')"
            ),
            {"n": notification},
        )
    await retention.summarize_languages(now=dt.datetime.now(dt.UTC), budget_seconds=30)

    body = await _report(client, await sign_in(client, editor))
    _assert_split_adds_up(body)
    languages = {key[3]: figures for key, figures in _by(body, "language").items()}
    assert {k: (v["devices_targeted"], v["readers_reached"]) for k, v in languages.items()} == {
        "vi": (1, 1),
        "zh": (1, 0),
        "unknown": (1, 1),  # the deleted device: its delivery and its receipt's device are gone
    }


async def test_the_fold_counts_once_after_a_crash_and_when_run_twice_at_once(client, owner_engine):
    _, _, _, editor = await portals_with_pushes(owner_engine)
    async with owner_engine.connect() as conn:
        ids = list((await conn.execute(text("SELECT id FROM notifications"))).scalars())
        expected = {
            (row[0], row[1]): (row[2], row[3], row[4], 0, 0, 0)
            for row in await conn.execute(
                text(
                    "SELECT notification_id, language, count(*), count(*) FILTER (WHERE status = 'sent'),"
                    " count(*) FILTER (WHERE status = 'invalid') FROM deliveries GROUP BY 1, 2"
                )
            )
        }

    # A worker killed after the fold's statement, before its commit: nothing stays.
    async def killed_before_commit() -> None:
        async with transaction() as session:
            assert await language_summary.fold(session, ids=ids) == (5, 9)
            raise RuntimeError("worker killed")

    with pytest.raises(RuntimeError):
        await killed_before_commit()
    assert await _summary(owner_engine) == {}

    # The cron and a nightly purge's fold at the same moment, and the job run twice.
    now = dt.datetime.now(dt.UTC)
    results = await asyncio.gather(
        language_summary.fold_batch(now, 5000),
        language_summary.fold_batch(now, 5000),
        retention.summarize_languages(now=now, budget_seconds=30),
    )
    assert sum(r if isinstance(r, int) else r["deliveries"] for r in results) == 9  # each read once
    assert await _summary(owner_engine) == expected
    again = await retention.summarize_languages(now=now, budget_seconds=30)
    assert again == {"deliveries": 0, "complete": True}
    assert await _summary(owner_engine) == expected
    _assert_split_adds_up(await _report(client, await sign_in(client, editor)))


async def test_a_purge_stopped_between_batches_and_run_again_counts_each_receipt_once(
    client, owner_engine, small_batches: Settings
):
    _, _, _, editor = await portals_with_pushes(owner_engine)
    headers = await sign_in(client, editor)
    before = await _report(client, headers)

    first = await retention.purge(now=LATER, budget_seconds=0)  # one batch of 2 per kind, then stop
    assert first["complete"] is False and first["receipts"] == 2
    middle = await _report(client, headers)  # part summed, part still kept: the same figures
    assert middle == before
    while not (await retention.purge(now=LATER))["complete"]:
        pass
    after = await _report(client, headers)
    assert after == before
    _assert_split_adds_up(after)


async def test_receipts_arriving_between_the_fold_and_the_purge_are_counted_once(client, owner_engine):
    unit = await make_unit(name="Cổng Cần Thơ")
    editor = await make_account(role=Role.EDITOR, unit=unit)
    created = dt.datetime(2026, 1, 6, 9, tzinfo=VN)
    async with owner_engine.begin() as conn:
        notification = await push(
            conn,
            unit_id=unit.id,
            created=created,
            devices=[Device("vi", received=True), Device("vi"), Device("en"), Device("fr")],
        )
        rows = (
            await conn.execute(
                text("SELECT language, device_id FROM deliveries WHERE notification_id = :n"),
                {"n": notification},
            )
        ).all()
        devices = {language: device_id for language, device_id in rows if language != "vi"}
        readers = [device_id for _, device_id in rows]
        await conn.execute(
            text(
                "INSERT INTO inbox_items (reader_id, notification_id, app, created_at)"
                " SELECT d, :n, 'portal', :c FROM unnest(CAST(:readers AS uuid[])) AS d"
            ),
            {"n": notification, "readers": readers, "c": created},
        )
    await retention.summarize_languages(now=dt.datetime.now(dt.UTC), budget_seconds=30)

    def reader(device_id: uuid.UUID) -> Reader:
        return Reader(id=device_id, kind="device", language="vi", since=created, device_id=device_id)

    async def receipt(device_id: uuid.UUID, event: str) -> None:
        async with transaction() as session:
            await record_receipt(
                session, reader=reader(device_id), notification_id=notification, event=event, now=LATER
            )

    # After the fold: the English reader reports it received; its language is fixed at the write.
    await receipt(devices["en"], "received")
    async with owner_engine.connect() as conn:
        language = await conn.execute(
            text("SELECT language FROM receipts WHERE reader_id = :r"), {"r": devices["en"]}
        )
        assert language.scalar_one() == "en"

    # While the purge runs: the French reader's first receipt and the Vietnamese reader's "opened"
    # are being written in a transaction the purge's delete has to wait for (the update).
    headers = await sign_in(client, editor)
    async with owner_engine.connect() as conn:
        # The Vietnamese reader's receipt was written before receipts had a language.
        vi_reader = (
            await conn.execute(
                text("SELECT reader_id FROM receipts WHERE notification_id = :n AND language IS NULL"),
                {"n": notification},
            )
        ).scalar_one()
    async with transaction() as session:
        for device_id, event in ((devices["fr"], "received"), (vi_reader, "opened")):
            await record_receipt(
                session, reader=reader(device_id), notification_id=notification, event=event, now=LATER
            )
        purging = asyncio.create_task(retention.purge(now=LATER))
        await _until_the_receipt_delete_waits(owner_engine)
        assert not purging.done()
    await purging

    expected = {"vi": (2, 1, 1), "en": (1, 1, 0), "fr": (1, 1, 0)}  # devices, reached, opened

    def figures(body: dict) -> dict[str, tuple[int, int, int]]:
        return {
            key[3]: (f["devices_targeted"], f["readers_reached"], f["readers_opened"])
            for key, f in _by(body, "language").items()
        }

    body = await _report(client, headers)
    assert figures(body) == expected
    _assert_split_adds_up(body)
    # Whatever the delete skipped goes the next night; the figures stay.
    await retention.purge(now=LATER)
    async with owner_engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM receipts"))).scalar_one() == 0
    body = await _report(client, headers)
    assert figures(body) == expected
    _assert_split_adds_up(body)
