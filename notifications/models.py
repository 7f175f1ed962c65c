"""Notifications, their per-device deliveries (the outbox) and the receipts apps report."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Identity, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UUIDPrimaryKey
from notifications.content import PUSH_CONTENT_FIELDS, PushContent, PushSpec


class Notification(UUIDPrimaryKey, Base):
    __tablename__ = "notifications"

    app: Mapped[str] = mapped_column(String(16))
    # The push content (notifications/content.py PushContent): one column per field, same name.
    kind: Mapped[str] = mapped_column(String(64))
    priority: Mapped[str] = mapped_column(String(16))  # normal | high | emergency
    sensitivity: Mapped[str] = mapped_column(String(16))  # public | internal | classified
    title: Mapped[dict[str, str]] = mapped_column(JSONB)  # language → text, "vi" always present
    body: Mapped[dict[str, str]] = mapped_column(JSONB)
    data: Mapped[dict[str, str]] = mapped_column(JSONB, server_default=text("'{}'"))
    deep_link: Mapped[str | None] = mapped_column(String(2048))
    collapse_key: Mapped[str | None] = mapped_column(String(64))
    ttl_seconds: Mapped[int] = mapped_column(Integer)
    audience: Mapped[dict[str, Any]] = mapped_column(JSONB)

    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_by_kind: Mapped[str] = mapped_column(String(16))  # user | api_client
    created_by_id: Mapped[uuid.UUID] = mapped_column()
    unit_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"))

    # queued → fanning_out → sending → completed (or expired / cancelled)
    status: Mapped[str] = mapped_column(String(16), server_default=text("'queued'"))
    targeted: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    sent: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    invalid: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    failed: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # Deliveries never attempted because the notification was cancelled (news cancel, issue 5).
    cancelled: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # Keyset position of the fan-out, so a restarted fan-out resumes instead of starting over.
    fanout_cursor: Mapped[uuid.UUID | None]
    fanout_done_at: Mapped[dt.datetime | None]

    created_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
    expires_at: Mapped[dt.datetime]
    completed_at: Mapped[dt.datetime | None]
    # Set when the sender recalls it: a retract push went out and the inbox shows it withdrawn.
    withdrawn_at: Mapped[dt.datetime | None]
    # When the first and the last batch's provider answers were recorded (notifications/stats.py
    # "Timing"); written by the outbox's record statement.
    first_request_at: Mapped[dt.datetime | None]
    last_request_at: Mapped[dt.datetime | None]
    # The nightly purge's progress (notifications/retention.py): its deliveries are gone; its
    # receipts are gone and were summed into ``receipts_received`` / ``receipts_opened`` first.
    deliveries_purged_at: Mapped[dt.datetime | None]
    receipts_purged_at: Mapped[dt.datetime | None]
    receipts_received: Mapped[int | None]
    receipts_opened: Mapped[int | None]
    # Its per-language figures were folded into ``notification_languages`` (notifications/
    # language_summary.py); its deliveries and receipts may go only after that.
    languages_summarized_at: Mapped[dt.datetime | None]

    @property
    def content(self) -> PushContent:
        """What its pushes say, read from the content columns by name."""
        return PushContent(**{name: getattr(self, name) for name in PUSH_CONTENT_FIELDS})

    @staticmethod
    def content_values(content: PushContent) -> dict[str, Any]:
        """The content columns' values for an insert (the inverse of ``content``)."""
        return {name: getattr(content, name) for name in PUSH_CONTENT_FIELDS}

    def push_spec(self) -> PushSpec:
        return PushSpec(id=str(self.id), content=self.content, expires_at=self.expires_at)

    @property
    def pending(self) -> int:
        """Deliveries not settled yet (not yet sent, held by a worker, or retrying): derived from
        the counters, so that every figure shown adds up to ``targeted``."""
        settled = self.sent + self.invalid + self.failed + self.cancelled
        return max(0, self.targeted - settled)

    __table_args__ = (
        UniqueConstraint("created_by_id", "idempotency_key", name="uq_notifications_idempotency"),
        Index(
            "ix_notifications_status",
            "status",
            postgresql_where=text("status IN ('queued','fanning_out','sending')"),
        ),
        Index("ix_notifications_created_at", "created_at"),
        Index(
            "ix_notifications_deliveries_unpurged",
            "completed_at",
            postgresql_where=text("deliveries_purged_at IS NULL AND completed_at IS NOT NULL"),
        ),
        Index(
            "ix_notifications_receipts_unpurged",
            "created_at",
            postgresql_where=text("receipts_purged_at IS NULL"),
        ),
        Index(
            "ix_notifications_languages_unsummarized",
            "created_at",
            postgresql_where=text("languages_summarized_at IS NULL"),
        ),
    )


class Delivery(Base):
    """One row per notification × device. ``status`` moves pending → sent | invalid | retrying |
    failed (or cancelled); a row being sent stays pending, held through its batch's lease."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    notification_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"))
    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(8))
    language: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    error_code: Mapped[str | None] = mapped_column(String(64))
    next_attempt_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))

    # No index names ``status`` or ``next_attempt_at``: recording a result then changes no indexed
    # column, so PostgreSQL can update the row in place (HOT) without touching any index. Due
    # work is found through ``delivery_batches`` instead.
    __table_args__ = (
        UniqueConstraint("notification_id", "device_id", name="uq_deliveries_notification_device"),
        Index("ix_deliveries_device", "device_id"),
    )


class DeliveryBatch(Base):
    """One fan-out page of a notification's deliveries (ids ``low_id``..``high_id``, filtered by
    notification): the unit a send job claims, leases and retries.

    ``open`` while any of its rows is pending or retrying; ``next_attempt_at`` is when the
    earliest of them is due. A worker holds the batch until ``leased_until``; ``lease`` counts
    the claims, so a worker only settles a batch it still holds."""

    __tablename__ = "delivery_batches"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    notification_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"))
    low_id: Mapped[int] = mapped_column(BigInteger)
    high_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(8), server_default=text("'open'"))  # open | done
    next_attempt_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
    leased_until: Mapped[dt.datetime | None]
    lease: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))

    __table_args__ = (
        UniqueConstraint("notification_id", "low_id", name="uq_delivery_batches_notification_low"),
        # What send jobs, the reconciler, cancel and expiry look for.
        Index(
            "ix_delivery_batches_open",
            "notification_id",
            "next_attempt_at",
            postgresql_where=text("status = 'open'"),
        ),
    )


class Receipt(Base):
    """What the app reported for one notification and reader: first received, first opened.
    Idempotent (the first time wins); feeds the notification's stats and the SMS fallback.

    Part of a notification's record of what became of it, next to its deliveries; the app reports
    it through the inbox (``POST /v1/inbox/{id}/receipts``, inbox/receipts.py), whose reader (a
    signed-in user, or an anonymous device) is ``reader_id``."""

    __tablename__ = "receipts"

    notification_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), primary_key=True
    )
    reader_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    device_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("devices.id", ondelete="SET NULL"))
    received_at: Mapped[dt.datetime | None]
    opened_at: Mapped[dt.datetime | None]
    # The reader's language for reports, fixed when the receipt is first written (the delivery's
    # language, else the device's locale, else "unknown"); NULL on receipts older than the column.
    language: Mapped[str | None] = mapped_column(String(8))


class NotificationLanguage(Base):
    """A notification's figures in one reader language (notifications/language_summary.py): its
    devices (from the deliveries, once sending has ended) and the readers whose receipts the
    purge removed. Kept as long as the notification, so reports split by language past the
    deliveries' and receipts' retention."""

    __tablename__ = "notification_languages"

    notification_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), primary_key=True
    )
    language: Mapped[str] = mapped_column(String(8), primary_key=True)
    targeted: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    sent: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    invalid: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    failed: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    received: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    opened: Mapped[int] = mapped_column(Integer, server_default=text("0"))
