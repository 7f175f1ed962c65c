"""update requests: the standing agency asks a unit for an update or a correction (D-15)

Revision ID: 0021
Revises: 0019
Create Date: 2026-12-05 09:30:00

Issue 19 item 2: the standing agency asks the unit in charge of a task for an update or a
correction, due on a working day; the unit answers once. A rejected report is a correction
request asked by the tracking system. The sweep reminds before the due date and escalates after
it while the request is open (the partial index on open requests' due dates).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tracking_update_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Uuid(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(16), server_default=sa.text("'open'"), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_by", sa.Uuid(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("answer_result_status", sa.String(16), nullable=True),
        sa.Column("answer_description", sa.Text(), nullable=True),
        sa.Column("answer_difficulties", sa.Text(), nullable=True),
        sa.Column("answer_proposals", sa.Text(), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind IN ('update', 'correction')", name=op.f("ck_tracking_update_requests_kind")),
        sa.CheckConstraint(
            "origin IN ('agency', 'report_rejected')", name=op.f("ck_tracking_update_requests_origin")
        ),
        sa.CheckConstraint(
            "status IN ('open', 'answered', 'closed')", name=op.f("ck_tracking_update_requests_status")
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tracking_tasks.id"],
            name=op.f("fk_tracking_update_requests_task_id_tracking_tasks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"],
            ["users.id"],
            name=op.f("fk_tracking_update_requests_requested_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["answered_by"],
            ["users.id"],
            name=op.f("fk_tracking_update_requests_answered_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_update_requests")),
    )
    op.create_index(
        op.f("ix_tracking_update_requests_task_id"), "tracking_update_requests", ["task_id"], unique=False
    )
    op.create_index(
        "ix_tracking_update_requests_open_due",
        "tracking_update_requests",
        ["due_date"],
        unique=False,
        postgresql_where=sa.text("status = 'open'"),
    )


def downgrade() -> None:
    op.drop_index("ix_tracking_update_requests_open_due", table_name="tracking_update_requests")
    op.drop_index(op.f("ix_tracking_update_requests_task_id"), table_name="tracking_update_requests")
    op.drop_table("tracking_update_requests")
