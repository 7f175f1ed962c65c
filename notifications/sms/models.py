"""The SMS ledger (one row per notification × user, ever), daily cap counters and the
degraded-mode switch. PostgreSQL is the system of record for all three (Redis only holds the
push circuit breaker's short-lived error counters)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

import auth.models  # noqa: F401  (users, units: the ledger refers to them)
from core.db import Base
from notifications.models import Notification


class SmsMessage(Base):
    """At most one SMS per (notification, user), ever: the UNIQUE constraint is what makes two
    overlapping sweeps or two workers send one SMS.

    ``status``: queued → sending (leased until ``claimed_until``) → sent | retrying | failed;
    or, decided when the row is written and never sent: capped (a daily cap was reached),
    no_phone (the user has no phone number)."""

    __tablename__ = "sms_messages"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    notification_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    unit_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(String(32))  # emergency_unacknowledged | degraded_mode
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    error_code: Mapped[str | None] = mapped_column(String(64))
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    next_attempt_at: Mapped[dt.datetime | None]
    claimed_until: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]
    sent_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime]

    __table_args__ = (
        UniqueConstraint("notification_id", "user_id", name="uq_sms_messages_notification_user"),
        Index(
            "ix_sms_messages_due",
            "next_attempt_at",
            postgresql_where=text("status IN ('queued', 'retrying', 'sending')"),
        ),
        Index("ix_sms_messages_created_at", "created_at"),
        Index("ix_sms_messages_user", "user_id"),
    )


class SmsDailyCount(Base):
    """SMS reserved per local day (Asia/Ho_Chi_Minh) and scope: ``user``, ``unit`` or ``all``
    (``scope_id`` is the nil UUID for ``all``). A conditional upsert increments a row only while
    it is under its cap, and the row lock makes that hold under any concurrency."""

    __tablename__ = "sms_daily_counts"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    scope_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class DegradedMode(Base):
    """The operator's switch (one row, id = 1): while on, high-priority targeted notifications
    also fall back to SMS for users whose devices have not acknowledged them."""

    __tablename__ = "sms_degraded_mode"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    reason: Mapped[str | None] = mapped_column(String(500))
    changed_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    changed_at: Mapped[dt.datetime | None]
    enabled_at: Mapped[dt.datetime | None]

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


# The fallback sweep scans recent emergency/high notifications by age.
Index(
    "ix_notifications_sms_candidates",
    Notification.created_at,
    postgresql_where=text("priority IN ('emergency', 'high')"),
)
