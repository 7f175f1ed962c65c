"""The in-app inbox (D-30): per-recipient rows for targeted notifications, and for broadcasts
only the state a reader creates by acting on them.

A *reader* is a signed-in user (``reader_id`` = user id) or an anonymous portal device holding a
device credential (``reader_id`` = device id). Broadcasts (audience ``all`` or ``topics``) are
stored once, as the notification row, and merged into each reader's inbox when it is read, so a
breaking story to millions of readers writes no inbox rows at all.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, ForeignKey, Identity, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

import auth.models  # noqa: F401  (units, users: tables the notifications refer to)
import devices.models  # noqa: F401  (devices: the deliveries and receipts of notifications refer to it)
from core.db import Base
from notifications.models import Notification

# Which notifications are broadcasts. Kept as literal SQL: the partial index below is only used
# when a query repeats this exact predicate with constants (bound parameters would not match).
BROADCAST_SQL = "((audience @> '{\"all\": true}'::jsonb) OR ((audience -> 'topics') <> '[]'::jsonb))"

# Broadcasts of one app in inbox order; the merged list and the unread count range-scan it.
Index(
    "ix_notifications_broadcast",
    Notification.app,
    Notification.created_at,
    Notification.id,
    postgresql_where=text(BROADCAST_SQL),
)


class InboxItem(Base):
    """One targeted notification (users, units, roles, devices) in one reader's inbox.
    ``created_at`` is the notification's, copied so that the inbox order needs no join."""

    __tablename__ = "inbox_items"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    reader_id: Mapped[uuid.UUID]
    notification_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"))
    app: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime]
    read_at: Mapped[dt.datetime | None]
    archived_at: Mapped[dt.datetime | None]

    __table_args__ = (
        UniqueConstraint("reader_id", "notification_id", name="uq_inbox_items_reader_notification"),
        # Keyset pagination, newest first: (created_at, notification_id) < cursor.
        Index("ix_inbox_items_reader_order", "reader_id", "created_at", "notification_id"),
        # The unread count is an index-only count over this partial index.
        Index(
            "ix_inbox_items_unread",
            "reader_id",
            "app",
            postgresql_where=text("read_at IS NULL AND archived_at IS NULL"),
        ),
        Index("ix_inbox_items_notification", "notification_id"),
    )


class BroadcastState(Base):
    """A reader's state of one broadcast, written only when the reader acts on it."""

    __tablename__ = "broadcast_states"

    reader_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    notification_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), primary_key=True
    )
    read_at: Mapped[dt.datetime | None]
    archived_at: Mapped[dt.datetime | None]

    __table_args__ = (Index("ix_broadcast_states_notification", "notification_id"),)


class ReaderMarker(Base):
    """ "Read everything up to here" per reader and app: broadcasts at or before the position
    ``(read_up_to_created_at, read_up_to_id)`` count as read. It only moves forward."""

    __tablename__ = "reader_markers"

    reader_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    app: Mapped[str] = mapped_column(String(16), primary_key=True)
    read_up_to_created_at: Mapped[dt.datetime]
    read_up_to_id: Mapped[uuid.UUID]
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))


class InboxFanout(Base):
    """Progress of writing a targeted notification's inbox rows: the keyset position of the last
    page written, so a lost or killed job is resumed by the reconciler instead of forgotten."""

    __tablename__ = "inbox_fanouts"

    notification_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), primary_key=True
    )
    cursor: Mapped[uuid.UUID | None]
    done_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))

    __table_args__ = (
        Index("ix_inbox_fanouts_pending", "updated_at", postgresql_where=text("done_at IS NULL")),
    )
