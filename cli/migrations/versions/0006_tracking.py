"""tracking tasks, KPIs, reminders (issue 6)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 13:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("result_status <> 'done'")


def upgrade() -> None:
    uuid_array = postgresql.ARRAY(sa.Uuid())
    op.create_table(
        "tracking_tasks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("group_code", sa.String(length=64), nullable=True),
        sa.Column("group_name", sa.Text(), nullable=True),
        sa.Column("lead_unit_id", sa.Uuid(), nullable=False),
        sa.Column("cooperating_unit_ids", uuid_array, server_default=sa.text("'{}'"), nullable=False),
        sa.Column("responsible_user_ids", uuid_array, server_default=sa.text("'{}'"), nullable=False),
        sa.Column("assigning_document", sa.Text(), nullable=True),
        sa.Column("expected_output", sa.Text(), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_date", sa.Date(), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("result_status", sa.String(length=16), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("classified", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("difficulties", sa.Text(), nullable=True),
        sa.Column("proposals", sa.Text(), nullable=True),
        sa.Column("attachments", postgresql.JSONB(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column("report_status", sa.String(length=16), nullable=True),
        sa.Column("report_note", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("source_client_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_unit_id"],
            ["units.id"],
            name=op.f("fk_tracking_tasks_lead_unit_id_units"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_tasks")),
        sa.UniqueConstraint("code", name=op.f("uq_tracking_tasks_code")),
    )
    op.create_index(op.f("ix_tracking_tasks_lead_unit_id"), "tracking_tasks", ["lead_unit_id"])
    op.create_index(
        "ix_tracking_tasks_open_deadline", "tracking_tasks", ["deadline_date"], postgresql_where=OPEN
    )
    op.create_index(
        "ix_tracking_tasks_unconfirmed",
        "tracking_tasks",
        ["received_at"],
        postgresql_where=sa.text("confirmed_at IS NULL AND result_status <> 'done'"),
    )
    op.create_index(
        "ix_tracking_tasks_responsible", "tracking_tasks", ["responsible_user_ids"], postgresql_using="gin"
    )
    op.create_index(
        "ix_tracking_tasks_cooperating", "tracking_tasks", ["cooperating_unit_ids"], postgresql_using="gin"
    )

    op.create_table(
        "tracking_kpis",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("period_kind", sa.String(length=8), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("unit_id", sa.Uuid(), nullable=False),
        sa.Column("responsible_user_ids", uuid_array, server_default=sa.text("'{}'"), nullable=False),
        sa.Column("target", sa.Numeric(), nullable=True),
        sa.Column("value", sa.Numeric(), nullable=True),
        sa.Column("cumulative_value", sa.Numeric(), nullable=True),
        sa.Column("report_due", sa.Date(), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("source_client_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_tracking_kpis_unit_id_units"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_kpis")),
        sa.UniqueConstraint("code", "period", name="uq_tracking_kpis_code_period"),
    )
    op.create_index(op.f("ix_tracking_kpis_unit_id"), "tracking_kpis", ["unit_id"])
    op.create_index(
        "ix_tracking_kpis_due",
        "tracking_kpis",
        ["report_due"],
        postgresql_where=sa.text("reported_at IS NULL"),
    )

    op.create_table(
        "tracking_reminders",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("rule", sa.String(length=16), nullable=False),
        sa.Column("occurrence", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=8), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("notification_id", sa.Uuid(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_reminders")),
        sa.UniqueConstraint("subject_id", "rule", "occurrence", "user_id", name="uq_tracking_reminders_once"),
    )
    op.create_index(
        "ix_tracking_reminders_pending",
        "tracking_reminders",
        ["channel", "id"],
        postgresql_where=sa.text("status = 'pending'"),
    )

    op.create_table(
        "tracking_calendar_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("note", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_tracking_calendar_days")),
    )
    op.create_table(
        "tracking_preferences",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("quiet_start", sa.Time(), nullable=True),
        sa.Column("quiet_end", sa.Time(), nullable=True),
        sa.Column("daily_digest", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_tracking_preferences_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_tracking_preferences")),
    )


def downgrade() -> None:
    op.drop_table("tracking_preferences")
    op.drop_table("tracking_calendar_days")
    op.drop_index("ix_tracking_reminders_pending", table_name="tracking_reminders")
    op.drop_table("tracking_reminders")
    op.drop_index("ix_tracking_kpis_due", table_name="tracking_kpis")
    op.drop_index(op.f("ix_tracking_kpis_unit_id"), table_name="tracking_kpis")
    op.drop_table("tracking_kpis")
    for name in (
        "ix_tracking_tasks_cooperating",
        "ix_tracking_tasks_responsible",
        "ix_tracking_tasks_unconfirmed",
        "ix_tracking_tasks_open_deadline",
    ):
        op.drop_index(name, table_name="tracking_tasks")
    op.drop_index(op.f("ix_tracking_tasks_lead_unit_id"), table_name="tracking_tasks")
    op.drop_table("tracking_tasks")
