"""delivery stats and pacing (issue 5 §4)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 13:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # When the first and the latest provider answers of a notification were recorded
    # (notifications/stats.py): "time to first / last provider request" without scanning
    # millions of delivery rows. Nullable: nothing sent yet.
    op.add_column("notifications", sa.Column("first_request_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("notifications", sa.Column("last_request_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("notifications", "last_request_at")
    op.drop_column("notifications", "first_request_at")
