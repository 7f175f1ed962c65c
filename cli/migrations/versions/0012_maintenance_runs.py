"""maintenance runs: when the audit verification, the backups and the restore drills last
succeeded and failed

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-10 09:00:00

Issue 15: these tasks run from cron outside the workers; each records its outcome here
(core/maintenance.py) so that the exported figures can say how long ago each last succeeded.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "maintenance_runs",
        sa.Column("task", sa.String(length=32), nullable=False),
        sa.Column("repo", sa.String(length=8), nullable=False),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("task", "repo", name=op.f("pk_maintenance_runs")),
    )


def downgrade() -> None:
    op.drop_table("maintenance_runs")
