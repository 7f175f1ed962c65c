"""Sections readers follow and breaking-news items with their workflow state."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UUIDPrimaryKey


class Section(UUIDPrimaryKey, Base):
    """A topic readers follow (D-03). ``code`` is the topic string on devices; ``unit_id`` is NULL
    for the national sections and set for a component portal's own sections."""

    __tablename__ = "news_sections"

    code: Mapped[str] = mapped_column(String(64), unique=True)
    unit_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    names: Mapped[dict[str, str]] = mapped_column(JSONB)  # language → name, "vi" always present
    position: Mapped[int] = mapped_column(Integer, server_default=text("100"))
    archived_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))


class NewsItem(UUIDPrimaryKey, Base):
    """draft → submitted → approved → scheduled | sending → sent; rejected goes back to the
    author; cancelled and recalled end it (see news/workflow.py)."""

    __tablename__ = "news_items"

    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"))
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16), server_default=text("'draft'"))
    article_id: Mapped[str] = mapped_column(String(128))
    deep_link: Mapped[str] = mapped_column(String(2048))
    image_url: Mapped[str | None] = mapped_column(String(2048))
    title: Mapped[dict[str, str]] = mapped_column(JSONB)
    body: Mapped[dict[str, str]] = mapped_column(JSONB)
    language_policy: Mapped[str] = mapped_column(String(16))  # fallback_vi | skip_missing
    audience: Mapped[dict[str, Any]] = mapped_column(JSONB)
    priority: Mapped[str] = mapped_column(String(16))
    ttl_seconds: Mapped[int] = mapped_column(Integer)
    collapse_key: Mapped[str] = mapped_column(String(64))
    send_at: Mapped[dt.datetime | None]
    submitted_by: Mapped[uuid.UUID | None]
    submitted_at: Mapped[dt.datetime | None]
    approved_by: Mapped[uuid.UUID | None]
    approved_at: Mapped[dt.datetime | None]
    rejected_reason: Mapped[str | None] = mapped_column(String(1000))
    notification_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("notifications.id", ondelete="SET NULL")
    )
    retract_notification_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("notifications.id", ondelete="SET NULL")
    )
    released_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    cancelled_at: Mapped[dt.datetime | None]
    recalled_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))

    __table_args__ = (
        Index("ix_news_items_unit_created", "unit_id", "created_at"),
        # What the release job and cron scan: scheduled items by send time, sending items.
        Index("ix_news_items_due", "send_at", postgresql_where=text("status = 'scheduled'")),
        Index("ix_news_items_sending", "notification_id", postgresql_where=text("status = 'sending'")),
    )
