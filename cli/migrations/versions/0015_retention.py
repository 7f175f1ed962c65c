"""retention: what the nightly purge has already done per notification, and the receipts it
summed before deleting them

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-05 07:00:00

Issue 19 item 7: records were kept for ever. The purge (notifications/retention.py) now applies
a retention per kind in bounded batches; these markers let each night resume where the last one
stopped instead of scanning every old notification again, and the receipt totals keep a
notification's stats after its receipts are gone.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("notifications", sa.Column("deliveries_purged_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("notifications", sa.Column("receipts_purged_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("notifications", sa.Column("receipts_received", sa.Integer(), nullable=True))
    op.add_column("notifications", sa.Column("receipts_opened", sa.Integer(), nullable=True))
    # What each purge step looks for, oldest first; a notification leaves its index once done.
    op.create_index(
        "ix_notifications_deliveries_unpurged",
        "notifications",
        ["completed_at"],
        postgresql_where=sa.text("deliveries_purged_at IS NULL AND completed_at IS NOT NULL"),
    )
    op.create_index(
        "ix_notifications_receipts_unpurged",
        "notifications",
        ["created_at"],
        postgresql_where=sa.text("receipts_purged_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_receipts_unpurged", table_name="notifications")
    op.drop_index("ix_notifications_deliveries_unpurged", table_name="notifications")
    op.drop_column("notifications", "receipts_opened")
    op.drop_column("notifications", "receipts_received")
    op.drop_column("notifications", "receipts_purged_at")
    op.drop_column("notifications", "deliveries_purged_at")
