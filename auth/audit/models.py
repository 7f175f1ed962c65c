from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base


class AuditLog(Base):
    """One row per mutation or auth event. ``seq`` is the chain order; ``hash`` is
    HMAC(key, prev_hash ‖ canonical JSON of the row). Database triggers reject UPDATE, DELETE and
    TRUNCATE, and the application's role is granted neither."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    occurred_at: Mapped[dt.datetime]
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[uuid.UUID | None]
    on_behalf_of_id: Mapped[uuid.UUID | None]
    unit_id: Mapped[uuid.UUID | None]
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str | None] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_log_actor_seq", "actor_id", "seq"),
        Index("ix_audit_log_unit_seq", "unit_id", "seq"),
        Index("ix_audit_log_action_seq", "action", "seq"),
        Index("ix_audit_log_occurred_at", "occurred_at"),
        Index("ix_audit_log_object", "object_type", "object_id"),
    )


HASHED_FIELDS = (
    "seq",
    "occurred_at",
    "actor_kind",
    "actor_id",
    "on_behalf_of_id",
    "unit_id",
    "action",
    "object_type",
    "object_id",
    "outcome",
    "request_id",
    "ip",
    "user_agent",
    "details",
)

GENESIS_HASH = "0" * 64
