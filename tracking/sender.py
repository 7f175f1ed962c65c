"""Turning pending ledger rows into notifications, at most once each.

A sender claims a chunk of pending rows with ``FOR UPDATE SKIP LOCKED`` (two workers never hold
the same row), creates one notification per (subject, rule, occurrence) for the claimed
recipients, and marks the rows ``sent`` with the notification's id in the same transaction: a
crash before the commit loses both, a commit keeps both, and a row that is ``sent`` is never
claimed again (the claim re-checks ``status`` on a row another sender just committed). A chunk
costs a fixed handful of statements, not a few per notification: its notifications are written
together (``notify.send_many``), and its ledger rows marked in one UPDATE.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Time, exists, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core.workcalendar import WorkCalendar
from tracking import notify, texts
from tracking.events import local_date
from tracking.models import Kpi, Preference, Reminder, Task, UpdateRequest
from tracking.quiet import in_quiet_hours
from tracking.rules import Rules

MAX_DIGEST_LISTED = 5
DIGEST_USERS_PER_RUN = 500


@dataclass(frozen=True)
class Subject:
    code: str
    name: str
    due: str
    classified: bool
    open: bool
    # An update request's task (its reminders open the task's page) and kind (update|correction).
    task_id: uuid.UUID | None = None
    kind: str | None = None

    def link(self, subject_id: uuid.UUID, rule: str) -> str:
        if rule == "report":
            return "chuong-tracking://kpis"
        if self.task_id is not None:
            return f"{notify.task_link(self.task_id)}/requests/{subject_id}"
        return notify.task_link(subject_id)


def _text(rule: str, occurrence: str, subject: Subject, rules: Rules) -> tuple[str, str]:
    """The reminder's title and body (catalogue keys ``tracking.reminder.…``)."""
    params = {"head": f"{subject.code}: {subject.name}", "due": subject.due}
    if rule == "deadline":
        days = int(occurrence.split(":", 1)[0][1:])
        title = "tracking.reminder.deadline.today.title" if days == 0 else "tracking.reminder.deadline.title"
        body = "tracking.reminder.deadline.body"
    elif rule == "overdue":
        step, target = occurrence.split(":")[:2]
        if target == "responsible":
            title, body = "tracking.reminder.overdue.title", "tracking.reminder.overdue.body"
        else:
            who = "unit_leaders" if target == "unit_leaders" else "standing_agency"
            title, body = f"tracking.reminder.overdue.{who}.title", "tracking.reminder.overdue.escalated.body"
            params["days"] = step[1:]
    elif rule == "request":
        title, body = _request_text(occurrence, subject)
        if occurrence.startswith("w"):  # after the due day: w<n>:<target>:<date>
            params["days"] = occurrence.split(":")[0][1:]
    elif rule == "confirm":
        step = "half" if occurrence.startswith("half:") else "expiry"
        title, body = f"tracking.reminder.confirm.{step}.title", f"tracking.reminder.confirm.{step}.body"
        params["hours"] = f"{rules.confirm_window_hours:g}"
    else:
        title, body = "tracking.reminder.report.title", "tracking.reminder.report.body"
    return texts.render(title), texts.render(body, **params)


def _request_text(occurrence: str, subject: Subject) -> tuple[str, str]:
    """Keys of a request's reminder: ``b<n>:<due>`` before the due day, ``w<n>:<target>:<due>``
    after it (``tracking.reminder.request.…``)."""
    what = subject.kind or "update"
    step, rest = occurrence.split(":", 1)
    if step.startswith("b"):
        when = "today" if step == "b0" else "before"
        return f"tracking.reminder.request.{what}.{when}.title", "tracking.reminder.request.body"
    target = rest.split(":", 1)[0]
    if target == "responsible":
        return f"tracking.reminder.request.{what}.overdue.title", "tracking.reminder.request.overdue.body"
    who = "unit_leaders" if target == "unit_leaders" else "standing_agency"
    return (
        f"tracking.reminder.request.overdue.{who}.title",
        "tracking.reminder.request.overdue.escalated.body",
    )


async def _subjects(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, Subject]:
    subjects: dict[uuid.UUID, Subject] = {}
    for task in (
        await session.execute(
            select(Task.id, Task.code, Task.name, Task.deadline, Task.classified, Task.result_status).where(
                Task.id.in_(ids)
            )
        )
    ).all():
        subjects[task.id] = Subject(
            task.code, task.name, local_date(task.deadline), task.classified, task.result_status != "done"
        )
    for kpi in (
        await session.execute(
            select(Kpi.id, Kpi.code, Kpi.period, Kpi.name, Kpi.report_due, Kpi.reported_at).where(
                Kpi.id.in_(ids - subjects.keys())
            )
        )
    ).all():
        subjects[kpi.id] = Subject(
            f"{kpi.code} ({kpi.period})",
            kpi.name,
            kpi.report_due.strftime("%d/%m/%Y"),
            False,
            kpi.reported_at is None,
        )
    for request in (
        await session.execute(
            select(
                UpdateRequest.id,
                UpdateRequest.task_id,
                UpdateRequest.kind,
                UpdateRequest.due_date,
                UpdateRequest.status,
                Task.code,
                Task.name,
                Task.classified,
            )
            .join(Task, Task.id == UpdateRequest.task_id)
            .where(UpdateRequest.id.in_(ids - subjects.keys()))
        )
    ).all():
        # Open until answered (or closed by the tracking system), done task or not: a report
        # is often corrected after the work is done.
        subjects[request.id] = Subject(
            request.code,
            request.name,
            request.due_date.strftime("%d/%m/%Y"),
            request.classified,
            request.status == "open",
            task_id=request.task_id,
            kind=request.kind,
        )
    return subjects


async def _mark(
    session: AsyncSession, ids: list[int], *, status: str, notification_id: uuid.UUID | None, now: dt.datetime
) -> None:
    await session.execute(
        update(Reminder)
        .where(Reminder.id.in_(ids))
        .values(status=status, notification_id=notification_id, sent_at=now)
        .execution_options(synchronize_session=False)
    )


async def send_pending(session: AsyncSession, *, now: dt.datetime, rules: Rules, limit: int) -> int:
    """Claim up to ``limit`` pending push rows and send them; returns the rows claimed (0 when
    nothing is left for this sender, or while the tracking app is switched off: the rows wait,
    and a reminder whose task is done by then is dropped when it is claimed)."""
    if not await notify.app_enabled(session):
        return 0
    claimed = (
        await session.execute(
            select(
                Reminder.id,
                Reminder.subject_id,
                Reminder.rule,
                Reminder.occurrence,
                Reminder.user_id,
                Reminder.priority,
            )
            .where(Reminder.status == "pending", Reminder.channel == "push")
            .order_by(Reminder.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not claimed:
        return 0
    groups: dict[tuple[uuid.UUID, str, str, str], list[tuple[int, uuid.UUID]]] = defaultdict(list)
    for row in claimed:
        groups[(row.subject_id, row.rule, row.occurrence, row.priority)].append((row.id, row.user_id))
    subjects = await _subjects(session, {key[0] for key in groups})
    dropped: list[int] = []
    messages: list[notify.Message] = []
    members_of: list[list[int]] = []
    for (subject_id, rule, occurrence, priority), members in groups.items():
        ids = [row_id for row_id, _ in members]
        subject = subjects.get(subject_id)
        if subject is None or not subject.open:
            # Done (or reported) since the sweep: the reminder no longer applies.
            dropped += ids
            continue
        title, body = _text(rule, occurrence, subject, rules)
        messages.append(
            notify.Message(
                kind=f"tracking.reminder.{rule}",
                title=title,
                body=body,
                recipients=[user_id for _, user_id in members],
                classified=subject.classified,
                priority=priority,
                data={"subject_id": str(subject_id), "rule": rule},
                deep_link=subject.link(subject_id, rule),
            )
        )
        members_of.append(ids)
    if dropped:
        await _mark(session, dropped, status="dropped", notification_id=None, now=now)
    # All the chunk's notifications in a few statements (notifications.service.create_prepared_many),
    # and the ledger rows marked with them in one more, in the same transaction: a crash before
    # the commit loses both, so the rows are claimed again; after it, they are never claimed again.
    notification_ids = await notify.send_many(session, messages=messages, rules=rules)
    sent = [(row_id, nid) for ids, nid in zip(members_of, notification_ids, strict=True) for row_id in ids]
    if sent:
        await session.execute(
            text(
                "UPDATE tracking_reminders r SET status = 'sent', notification_id = v.nid, sent_at = :now "
                "FROM unnest(CAST(:ids AS bigint[]), CAST(:nids AS uuid[])) AS v(id, nid) WHERE r.id = v.id"
            ),
            {"ids": [i for i, _ in sent], "nids": [n for _, n in sent], "now": now},
        )
    return len(claimed)


async def quiet_users(
    session: AsyncSession, *, user_ids: list[uuid.UUID], local_time: dt.time
) -> set[uuid.UUID]:
    """Those of ``user_ids`` in their quiet hours at ``local_time``, by the sweep's own rule
    (tracking/quiet.py)."""
    if not user_ids:
        return set()
    quiet = in_quiet_hours(Preference.quiet_start, Preference.quiet_end, literal(local_time, Time))
    found = await session.execute(select(Preference.user_id).where(Preference.user_id.in_(user_ids), quiet))
    return set(found.scalars())


def _digest_body(count: int, listed: list[str]) -> str:
    """How many items, and the codes of the first few that may be named."""
    if not listed:
        return texts.render("tracking.digest.body", count=count)
    shown = ", ".join(listed[:MAX_DIGEST_LISTED])
    if len(listed) > MAX_DIGEST_LISTED:
        more = len(listed) - MAX_DIGEST_LISTED
        return texts.render("tracking.digest.body_listed_more", count=count, listed=shown, more=more)
    return texts.render("tracking.digest.body_listed", count=count, listed=shown)


async def send_digests(
    session: AsyncSession, *, now: dt.datetime, calendar: WorkCalendar, rules: Rules
) -> int:
    """One push per digest user and working day, summarising their pending digest rows. The
    digest itself is a ledger row (subject = the user, occurrence = the local date)."""
    local = calendar.local(now)
    if not calendar.is_working_instant(now) or local.time() < rules.digest_time:
        return 0
    if not await notify.app_enabled(session):
        return 0  # switched off: the digest rows wait, as the reminders do (send_pending)
    digest = aliased(Reminder)
    users = list(
        (
            await session.execute(
                select(Reminder.user_id)
                .where(
                    Reminder.status == "pending",
                    Reminder.channel == "digest",
                    # Users who had today's digest wait for tomorrow's; skipping them here keeps
                    # them from filling every run's page and starving the others.
                    ~exists().where(
                        digest.rule == "digest",
                        digest.subject_id == Reminder.user_id,
                        digest.occurrence == local.date().isoformat(),
                    ),
                )
                .group_by(Reminder.user_id)
                .limit(DIGEST_USERS_PER_RUN)
            )
        ).scalars()
    )
    sent = 0
    quiet = await quiet_users(session, user_ids=users, local_time=local.time())
    for user_id in users:
        if user_id in quiet:
            continue
        claim = await session.execute(
            insert(Reminder)
            .values(
                subject_id=user_id,
                rule="digest",
                occurrence=local.date().isoformat(),
                user_id=user_id,
                priority="normal",
                channel="push",
                status="sent",
                due_at=now,
                created_at=now,
                sent_at=now,
            )
            .on_conflict_do_nothing(constraint="uq_tracking_reminders_once")
            .returning(Reminder.id)
        )
        digest_id = claim.scalar_one_or_none()
        if digest_id is None:
            continue  # today's digest went out; later rows wait for tomorrow's
        rows = (
            await session.execute(
                select(Reminder.id, Reminder.subject_id, Reminder.rule)
                .where(
                    Reminder.user_id == user_id, Reminder.status == "pending", Reminder.channel == "digest"
                )
                .order_by(Reminder.id)
                .with_for_update(skip_locked=True)
            )
        ).all()
        subjects = await _subjects(session, {row.subject_id for row in rows})
        live = [row for row in rows if (s := subjects.get(row.subject_id)) is not None and s.open]
        dropped = [row.id for row in rows if row not in live]
        if dropped:
            await _mark(session, dropped, status="dropped", notification_id=None, now=now)
        if not live:
            continue
        listed = [subjects[row.subject_id].code for row in live if not subjects[row.subject_id].classified]
        message = notify.Message(
            kind="tracking.digest",
            title=texts.render("tracking.digest.title"),
            body=_digest_body(len(live), listed),
            recipients=[user_id],
            deep_link="chuong-tracking://tasks",
        )
        notification_id = await notify.send(session, principal=None, message=message, rules=rules)
        await _mark(
            session, [row.id for row in live], status="sent", notification_id=notification_id, now=now
        )
        await session.execute(
            update(Reminder).where(Reminder.id == digest_id).values(notification_id=notification_id)
        )
        sent += 1
    return sent


async def pending_push_count(session: AsyncSession) -> int:
    return int(
        (
            await session.execute(
                text("SELECT count(*) FROM tracking_reminders WHERE status = 'pending' AND channel = 'push'")
            )
        ).scalar_one()
    )
