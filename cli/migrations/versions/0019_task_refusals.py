"""task refusals: a unit answers "wrong assignment / outside our authority" with a reason

Revision ID: 0019
Revises: 0015
Create Date: 2026-12-05 07:00:00

Issue 19 item 1 (D-14): within the 8-working-hour window a unit either confirms a task or says
it was wrongly assigned or is outside its authority. The refusal is stored on the task: it ends
the confirm window like a confirmation does, and the console and the API show it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tracking_tasks", sa.Column("refused_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tracking_tasks", sa.Column("refused_by", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_tracking_tasks_refused_by_users"),
        "tracking_tasks",
        "users",
        ["refused_by"],
        ["id"],
        ondelete="SET NULL",
    )
    op.add_column("tracking_tasks", sa.Column("refusal_reason_code", sa.String(32), nullable=True))
    op.add_column("tracking_tasks", sa.Column("refusal_reason", sa.Text(), nullable=True))
    op.create_check_constraint(
        op.f("ck_tracking_tasks_refusal_reason_code"),
        "tracking_tasks",
        "refusal_reason_code IN ('wrong_assignment', 'outside_authority')",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_tracking_tasks_refusal_reason_code"), "tracking_tasks", type_="check")
    op.drop_constraint(op.f("fk_tracking_tasks_refused_by_users"), "tracking_tasks", type_="foreignkey")
    op.drop_column("tracking_tasks", "refusal_reason")
    op.drop_column("tracking_tasks", "refusal_reason_code")
    op.drop_column("tracking_tasks", "refused_by")
    op.drop_column("tracking_tasks", "refused_at")
