"""The service-wide figures (notifications/backlog.py, notifications/figures.py): one periodic
query measures what is due but unclaimed, the oldest of it and the fan-out lag on crafted rows,
the API exports the snapshot (and nothing stale), and the maintenance times come along."""

from __future__ import annotations

import datetime as dt
import uuid

from prometheus_client.parser import text_string_to_metric_families

from core import clock, maintenance
from core.db import transaction
from notifications import backlog, figures
from tests.notifications.conftest import register_devices
from tests.notifications.due_rows import due_notification as _notification
from tests.notifications.due_rows import open_batch as _batch
from workers.figures_jobs import measure_figures

SECOND = dt.timedelta(seconds=1)


async def _craft(now: dt.datetime) -> None:
    devices = await register_devices([("fcm", f"ok-{uuid.uuid4().hex}", "vi") for _ in range(6)])
    async with transaction() as session:
        urgent = _notification(priority="high", now=now)
        normal = _notification(priority="normal", now=now)
        cancelled = _notification(priority="normal", now=now, status="cancelled")
        expired = _notification(priority="high", now=now, expires_at=now - SECOND)
        fanning = _notification(
            priority="emergency", now=now, fanout_done_at=None, created_at=now - dt.timedelta(minutes=5)
        )
        session.add_all([urgent, normal, cancelled, expired, fanning])
        await session.flush()
        # Due and free: three rows due (one since 90 s, a retry since 30 s), one sent, one not yet due.
        await _batch(
            session,
            urgent,
            devices,
            rows=[
                ("pending", now - 90 * SECOND),
                ("pending", now - 90 * SECOND),
                ("retrying", now - 30 * SECOND),
                ("sent", now - 90 * SECOND),
                ("retrying", now + 60 * SECOND),
            ],
        )
        # A batch a worker holds, and one whose rows are all due later: neither is backlog.
        await _batch(
            session,
            normal,
            devices,
            rows=[("pending", now - 20 * SECOND)] * 2,
            leased_until=now + 30 * SECOND,
        )
        await _batch(session, normal, devices[2:], rows=[("retrying", now + 5 * SECOND)])
        # A lease that ran out (the worker died): due again, since 40 s.
        await _batch(
            session, normal, devices[3:], rows=[("pending", now - 40 * SECOND)], leased_until=now - SECOND
        )
        # Notifications no claim takes any more: cancelled, past the TTL.
        await _batch(session, cancelled, devices, rows=[("pending", now - 600 * SECOND)])
        await _batch(session, expired, devices, rows=[("pending", now - 600 * SECOND)])
        # A fan-out that wrote its last page 100 s ago and has not finished.
        await _batch(
            session, fanning, devices, rows=[("pending", now + 600 * SECOND)], created_at=now - 100 * SECOND
        )


async def test_the_backlog_is_what_a_claim_would_take_now(client):
    now = clock.utcnow()
    await _craft(now)

    async with transaction() as session:
        measured = await backlog.measure(session, now=now)

    due = {work.priority: work for work in measured.due}
    assert (due["high"].deliveries, due["high"].batches, due["high"].oldest_due_age_seconds) == (3, 1, 90.0)
    assert (due["normal"].deliveries, due["normal"].batches, due["normal"].oldest_due_age_seconds) == (
        1,
        1,
        40.0,
    )
    assert (due["emergency"].deliveries, due["emergency"].batches) == (0, 0)
    assert due["emergency"].oldest_due_age_seconds == 0.0
    assert measured.fanouts_running == 1
    assert measured.fanout_lag_seconds == 100.0


async def test_past_the_counted_batches_a_batch_counts_its_id_range(client, monkeypatch):
    now = clock.utcnow()
    await _craft(now)
    monkeypatch.setattr(backlog, "COUNTED_BATCHES", 0)  # a backlog too large to count row by row

    async with transaction() as session:
        measured = await backlog.measure(session, now=now)

    due = {work.priority: work for work in measured.due}
    # The urgent batch's five rows, of which three are due: an upper bound, never less.
    assert (due["high"].deliveries, due["high"].batches) == (5, 1)
    assert due["normal"].deliveries == 1


async def test_nothing_due_measures_zeros(client):
    async with transaction() as session:
        measured = await backlog.measure(session, now=clock.utcnow())
    assert [(w.priority, w.deliveries, w.batches, w.oldest_due_age_seconds) for w in measured.due] == [
        ("normal", 0, 0, 0.0),
        ("high", 0, 0, 0.0),
        ("emergency", 0, 0, 0.0),
    ]
    assert (measured.fanouts_running, measured.fanout_lag_seconds) == (0, 0.0)


def _gauges(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith(("chuong_outbox", "chuong_fanout", "chuong_maintenance", "chuong_figures"))
    }


async def test_one_worker_measures_and_the_api_exports_the_figures(client):
    now = clock.utcnow()
    await _craft(now)
    verified = now - dt.timedelta(hours=3)
    async with transaction() as session:
        await maintenance.record(session, task=maintenance.MaintenanceTask.AUDIT_VERIFY, ok=True, at=verified)
        await maintenance.record(
            session, task=maintenance.MaintenanceTask.BACKUP, repo="1", ok=True, at=verified
        )
        await maintenance.record(session, task=maintenance.MaintenanceTask.RESTORE_DRILL, repo="2", ok=False)

    summary = await measure_figures({})  # the periodic job, as the cron runs it

    assert summary["due_deliveries"] == 4
    gauges = _gauges((await client.get("/metrics")).text)
    assert gauges[("chuong_outbox_due_deliveries", (("priority", "high"),))] == 3
    assert gauges[("chuong_outbox_due_deliveries", (("priority", "normal"),))] == 1
    assert gauges[("chuong_outbox_due_batches", (("priority", "high"),))] == 1
    assert gauges[("chuong_outbox_oldest_due_age_seconds", (("priority", "high"),))] >= 90
    assert gauges[("chuong_fanout_running", ())] == 1
    assert gauges[("chuong_fanout_lag_seconds", ())] >= 100
    assert gauges[("chuong_figures_computed_timestamp_seconds", ())] >= now.timestamp()
    success = "chuong_maintenance_last_success_timestamp_seconds"
    assert gauges[(success, (("repo", ""), ("task", "audit_verify")))] == verified.timestamp()
    assert gauges[(success, (("repo", "1"), ("task", "backup")))] == verified.timestamp()
    assert (
        "chuong_maintenance_last_failure_timestamp_seconds",
        (("repo", "2"), ("task", "restore_drill")),
    ) in gauges


async def test_a_stale_snapshot_exports_its_age_not_its_backlog(client):
    await measure_figures({})
    clock.advance(figures.FRESH_SECONDS + 1)  # no worker measured since

    gauges = _gauges((await client.get("/metrics")).text)

    assert ("chuong_figures_computed_timestamp_seconds", ()) in gauges
    assert not any(name.startswith(("chuong_outbox", "chuong_fanout")) for name, _ in gauges)


async def test_a_later_success_is_kept_and_an_earlier_one_ignored(client):
    task = maintenance.MaintenanceTask.AUDIT_VERIFY
    later, earlier = clock.utcnow(), clock.utcnow() - dt.timedelta(days=1)
    async with transaction() as session:
        await maintenance.record(session, task=task, ok=True, at=later)
        await maintenance.record(session, task=task, ok=True, at=earlier)  # a slow run finishing late
        await maintenance.record(session, task=task, ok=False, at=earlier)
    async with transaction() as session:
        [run] = await maintenance.all_runs(session)
    assert (run.task, run.repo, run.last_success_at, run.last_failure_at) == (
        "audit_verify",
        "",
        later,
        earlier,
    )
