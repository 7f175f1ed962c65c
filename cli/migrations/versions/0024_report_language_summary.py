"""report language summary: a notification's figures per reader language, kept past retention

Revision ID: 0024
Revises: 0021
Create Date: 2026-12-05 09:30:00

Issue 19 item 5: the reports' split by reader language read every device's delivery and receipt
(too slow at national scale) and fell to "unknown" once retention purged them. Each notification
now gets its per-language figures folded into ``notification_languages`` once its sending has
ended (devices) and when the receipt purge removes its receipts (readers); receipts carry the
reader's language from their first write. Nothing here touches existing rows: the columns are
nullable (no rewrite) and the existing notifications are summarised by the fold job
(notifications/language_summary.py) in bounded batches after the upgrade, before the purge may
delete their deliveries or receipts.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "notifications", sa.Column("languages_summarized_at", sa.DateTime(timezone=True), nullable=True)
    )
    # The fold's work list: a notification leaves it once summarised (a few thousand rows a month).
    op.create_index(
        "ix_notifications_languages_unsummarized",
        "notifications",
        ["created_at"],
        postgresql_where=sa.text("languages_summarized_at IS NULL"),
    )
    op.add_column("receipts", sa.Column("language", sa.String(8), nullable=True))
    op.create_table(
        "notification_languages",
        sa.Column("notification_id", sa.Uuid(), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("targeted", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("sent", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("invalid", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("failed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("received", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("opened", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
            name=op.f("fk_notification_languages_notification_id_notifications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("notification_id", "language", name=op.f("pk_notification_languages")),
    )


def downgrade() -> None:
    op.drop_table("notification_languages")
    op.drop_column("receipts", "language")
    op.drop_index("ix_notifications_languages_unsummarized", table_name="notifications")
    op.drop_column("notifications", "languages_summarized_at")
