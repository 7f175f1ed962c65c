"""The console's one table: MFA resets waiting for a second admin's confirmation."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UUIDPrimaryKey


class MfaResetRequest(UUIDPrimaryKey, Base):
    """One admin asks, a different admin who may also manage the account confirms (four eyes):
    resetting someone's second factor is how an account is taken over, so one person must not
    be able to do it alone."""

    __tablename__ = "console_mfa_reset_requests"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    requested_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    reason: Mapped[str | None] = mapped_column(String(500))
    requested_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    # pending | confirmed | cancelled
    status: Mapped[str] = mapped_column(String(16), server_default=text("'pending'"))
    decided_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[dt.datetime | None]

    __table_args__ = (
        # At most one open request per account.
        Index(
            "uq_console_mfa_reset_requests_pending",
            "user_id",
            unique=True,
            postgresql_where=text("status = 'pending'"),
        ),
    )
