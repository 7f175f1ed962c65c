from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import BigInteger, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.config import AUDIT_DEFAULT_KID
from core.db import Base


class AuditLog(Base):
    """One row per mutation or auth event. ``seq`` is the chain order; ``hash`` is
    HMAC(key ``key_id``, prev_hash ‖ canonical JSON of the row). Database triggers reject UPDATE,
    DELETE and TRUNCATE, and the application's role is granted neither.

    The table is partitioned by month of ``chained_at`` (migration 0011, auth/audit/partitions.py):
    the time the row joined the chain, which never goes back along ``seq`` (the writer takes the
    later of its clock and the previous row's), so every month holds one unbroken stretch of the
    chain and old months can be archived whole (auth/audit/archive.py). ``occurred_at`` stays the
    time of the event. Neither ``key_id`` nor ``chained_at`` is hashed, so the hashes of rows from
    before they existed are unchanged: a wrong ``key_id`` only makes verification use a key that
    does not match, and ``chained_at`` decides where a row is stored, not what it says.

    PostgreSQL requires the partition key in the primary key; ``seq`` alone is unique because it is
    only ever assigned under the chain's advisory lock in a READ COMMITTED transaction
    (auth/audit/writer.py), and ``chuong audit verify`` names a repeated seq as a break.
    """

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
    # Server defaults: the code of the previous release, still running while migration 0011 runs
    # ahead of the new code, keeps writing rows (with the key "default", its only key).
    chained_at: Mapped[dt.datetime] = mapped_column(primary_key=True, server_default=text("now()"))
    key_id: Mapped[str] = mapped_column(String(32), server_default=text(f"'{AUDIT_DEFAULT_KID}'"))

    __table_args__ = (
        Index("ix_audit_log_actor_seq", "actor_id", "seq"),
        Index("ix_audit_log_unit_seq", "unit_id", "seq"),
        Index("ix_audit_log_action_seq", "action", "seq"),
        Index("ix_audit_log_occurred_at", "occurred_at"),
        Index("ix_audit_log_object", "object_type", "object_id"),
        {"postgresql_partition_by": "RANGE (chained_at)"},
    )


class AuditArchive(Base):
    """One archived partition (auth/audit/archive.py): its signed manifest, as written at the head
    of the archive file. Verification of the live chain starts from the newest one's last hash;
    together they reach back to the genesis row. Append-only like the log itself."""

    __tablename__ = "audit_archives"

    first_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
    period_end: Mapped[dt.datetime]
    manifest: Mapped[dict[str, Any]] = mapped_column(JSONB)
    archived_at: Mapped[dt.datetime]


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
