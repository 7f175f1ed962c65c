"""Tracking app (D-10…D-17): tasks, KPIs, the reminder ledger, the working calendar's ad-hoc
days and each user's reminder preferences."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Identity,
    Index,
    Numeric,
    SmallInteger,
    String,
    Text,
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UUIDPrimaryKey

OPEN = "result_status <> 'done'"


class Task(UUIDPrimaryKey, Base):
    """One task as the tracking system last sent it. ``version`` is the sender's revision: an
    upsert carrying an older (or the same) version changes nothing."""

    __tablename__ = "tracking_tasks"

    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(Text)
    group_code: Mapped[str | None] = mapped_column(String(64))
    group_name: Mapped[str | None] = mapped_column(Text)
    lead_unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    cooperating_unit_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), server_default=text("'{}'")
    )
    responsible_user_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), server_default=text("'{}'")
    )
    assigning_document: Mapped[str | None] = mapped_column(Text)
    expected_output: Mapped[str | None] = mapped_column(Text)
    assigned_at: Mapped[dt.datetime | None]
    deadline: Mapped[dt.datetime]
    # The deadline's local (Asia/Ho_Chi_Minh) date: the day-based rules select on it by range.
    deadline_date: Mapped[dt.date] = mapped_column(Date)
    priority: Mapped[int] = mapped_column(SmallInteger)  # 1 (highest) … 5
    result_status: Mapped[str] = mapped_column(String(16))  # not_started | in_progress | done
    completed_at: Mapped[dt.datetime | None]
    classified: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    description: Mapped[str | None] = mapped_column(Text)
    difficulties: Mapped[str | None] = mapped_column(Text)
    proposals: Mapped[str | None] = mapped_column(Text)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'"))
    report_status: Mapped[str | None] = mapped_column(String(16))  # submitted | approved | rejected
    report_note: Mapped[str | None] = mapped_column(Text)
    # Start of the 8-working-hour confirm window (D-14): when the lead unit got the task.
    received_at: Mapped[dt.datetime]
    confirmed_at: Mapped[dt.datetime | None]
    # The other answer of D-14: "wrongly assigned / outside our authority", with a reason. It ends
    # the confirm window like a confirmation; a new lead unit (reassignment) clears it.
    refused_at: Mapped[dt.datetime | None]
    refused_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # wrong_assignment | outside_authority
    refusal_reason_code: Mapped[str | None] = mapped_column(String(32))
    refusal_reason: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(BigInteger)
    source_client_id: Mapped[uuid.UUID | None]
    # The field of responsibility (lĩnh vực, D-16) whose leaders also see and are warned about the
    # task (tracking/scope.py); None for tasks sent before fields existed or without one.
    field_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tracking_fields.id", ondelete="RESTRICT"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))

    __table_args__ = (
        CheckConstraint(
            "refusal_reason_code IN ('wrong_assignment', 'outside_authority')", name="refusal_reason_code"
        ),
        Index("ix_tracking_tasks_open_deadline", "deadline_date", postgresql_where=text(OPEN)),
        Index(
            "ix_tracking_tasks_unconfirmed",
            "received_at",
            postgresql_where=text(f"confirmed_at IS NULL AND {OPEN}"),
        ),
        Index("ix_tracking_tasks_responsible", "responsible_user_ids", postgresql_using="gin"),
        Index("ix_tracking_tasks_cooperating", "cooperating_unit_ids", postgresql_using="gin"),
    )


class Kpi(UUIDPrimaryKey, Base):
    """One KPI (chỉ số, D-11) for one report period, e.g. ``A.02.01`` for ``2026-Q4``."""

    __tablename__ = "tracking_kpis"

    code: Mapped[str] = mapped_column(String(32))
    period: Mapped[str] = mapped_column(String(16))
    period_kind: Mapped[str] = mapped_column(String(8))  # month | quarter | year | ad_hoc
    name: Mapped[str] = mapped_column(Text)
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    responsible_user_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), server_default=text("'{}'")
    )
    target: Mapped[Decimal | None] = mapped_column(Numeric)
    value: Mapped[Decimal | None] = mapped_column(Numeric)
    cumulative_value: Mapped[Decimal | None] = mapped_column(Numeric)
    report_due: Mapped[dt.date] = mapped_column(Date)
    reported_at: Mapped[dt.datetime | None]
    version: Mapped[int] = mapped_column(BigInteger)
    source_client_id: Mapped[uuid.UUID | None]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))

    __table_args__ = (
        UniqueConstraint("code", "period", name="uq_tracking_kpis_code_period"),
        Index("ix_tracking_kpis_due", "report_due", postgresql_where=text("reported_at IS NULL")),
    )


class Reminder(Base):
    """The reminder ledger: one row per (subject, rule, occurrence, recipient), ever. The sweep
    inserts rows ON CONFLICT DO NOTHING, so overlapping sweeps agree on one row; the sender
    moves a row from ``pending`` to ``sent`` in the transaction that creates its notification,
    under a row lock, so a reminder is sent at most once."""

    __tablename__ = "tracking_reminders"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    subject_id: Mapped[uuid.UUID] = mapped_column()  # a task, a KPI period, or a user (digest)
    rule: Mapped[str] = mapped_column(String(16))  # deadline | overdue | confirm | report | digest
    occurrence: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[uuid.UUID] = mapped_column()
    priority: Mapped[str] = mapped_column(String(16))  # normal | high | emergency
    channel: Mapped[str] = mapped_column(String(8))  # push | digest
    status: Mapped[str] = mapped_column(String(8), server_default=text("'pending'"))  # pending|sent|dropped
    notification_id: Mapped[uuid.UUID | None]
    due_at: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
    sent_at: Mapped[dt.datetime | None]

    __table_args__ = (
        UniqueConstraint("subject_id", "rule", "occurrence", "user_id", name="uq_tracking_reminders_once"),
        Index("ix_tracking_reminders_pending", "channel", "id", postgresql_where=text("status = 'pending'")),
    )


class CalendarDay(Base):
    """An ad-hoc change to the public calendar: a day off (``off``) or a worked day (``work``)."""

    __tablename__ = "tracking_calendar_days"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    note: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))


class Preference(Base):
    """A user's quiet hours (local time; may wrap midnight) and daily-digest choice."""

    __tablename__ = "tracking_preferences"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    quiet_start: Mapped[dt.time | None] = mapped_column(Time)
    quiet_end: Mapped[dt.time | None] = mapped_column(Time)
    daily_digest: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))


class UpdateRequest(UUIDPrimaryKey, Base):
    """The standing agency asks the unit in charge of a task for an update or a correction by a
    due date on the working calendar, and the unit answers once (D-15, tracking/requests.py). A
    rejected report is such a request too: a correction asked by the tracking system
    (``origin = report_rejected``). ``status``: open → answered by the unit, or closed by the
    tracking system (the report was resubmitted, approved or rejected again)."""

    __tablename__ = "tracking_update_requests"

    task_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tracking_tasks.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # update | correction
    origin: Mapped[str] = mapped_column(String(16))  # agency | report_rejected
    message: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    requested_at: Mapped[dt.datetime]
    # A working day; the answer is due by the end of its working hours.
    due_date: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), server_default=text("'open'"))
    answered_at: Mapped[dt.datetime | None]
    answered_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    answer: Mapped[str | None] = mapped_column(Text)
    # The progress fields the unit sent with its answer, for the standing agency to read; the
    # task's own fields stay the tracking system's (the system of record).
    answer_result_status: Mapped[str | None] = mapped_column(String(16))
    answer_description: Mapped[str | None] = mapped_column(Text)
    answer_difficulties: Mapped[str | None] = mapped_column(Text)
    answer_proposals: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))

    __table_args__ = (
        CheckConstraint("kind IN ('update', 'correction')", name="kind"),
        CheckConstraint("origin IN ('agency', 'report_rejected')", name="origin"),
        CheckConstraint("status IN ('open', 'answered', 'closed')", name="status"),
        Index("ix_tracking_update_requests_open_due", "due_date", postgresql_where=text("status = 'open'")),
    )


class TrackingField(UUIDPrimaryKey, Base):
    """A field of responsibility (lĩnh vực, D-16), e.g. ``KHCN`` (science and technology): tasks
    carry one, and leaders are put in charge of some (``LeaderField``)."""

    __tablename__ = "tracking_fields"

    code: Mapped[str] = mapped_column(String(64), unique=True)
    name_vi: Mapped[str] = mapped_column(String(255))
    name_en: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))


class LeaderField(Base):
    """A leader in charge of a field: they get the field's tasks in their dashboards, lists,
    digests, warnings and escalations, on top of their unit subtree's (tracking/scope.py)."""

    __tablename__ = "tracking_leader_fields"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    field_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tracking_fields.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
