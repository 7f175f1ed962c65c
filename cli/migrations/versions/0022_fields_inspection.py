"""fields of responsibility (D-16) and inspection committees' oversight

Revision ID: 0022
Revises: 0024
Create Date: 2026-12-05 09:30:00

Issue 19 items 3 and 4. Fields (lĩnh vực) are data: a table of fields, a nullable field on each
task (tasks sent before keep none), and which leaders are in charge of which fields; leaders see
and are warned about their fields' tasks as well as their subtree's (tracking/scope.py). An
inspection committee (a unit) oversees units: its ``inspector`` accounts read those subtrees.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tracking_fields",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name_vi", sa.String(length=255), nullable=False),
        sa.Column("name_en", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_fields")),
        sa.UniqueConstraint("code", name=op.f("uq_tracking_fields_code")),
    )
    op.create_table(
        "tracking_leader_fields",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("field_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["field_id"],
            ["tracking_fields.id"],
            name=op.f("fk_tracking_leader_fields_field_id_tracking_fields"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_tracking_leader_fields_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "field_id", name=op.f("pk_tracking_leader_fields")),
    )
    op.create_index(
        op.f("ix_tracking_leader_fields_field_id"), "tracking_leader_fields", ["field_id"], unique=False
    )
    op.add_column("tracking_tasks", sa.Column("field_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_tracking_tasks_field_id_tracking_fields"),
        "tracking_tasks",
        "tracking_fields",
        ["field_id"],
        ["id"],
        ondelete="RESTRICT",
    )
    op.create_index(op.f("ix_tracking_tasks_field_id"), "tracking_tasks", ["field_id"], unique=False)
    op.create_table(
        "inspection_oversight",
        sa.Column("committee_unit_id", sa.Uuid(), nullable=False),
        sa.Column("unit_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["committee_unit_id"],
            ["units.id"],
            name=op.f("fk_inspection_oversight_committee_unit_id_units"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_inspection_oversight_unit_id_units"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("committee_unit_id", "unit_id", name=op.f("pk_inspection_oversight")),
    )
    op.create_index(
        op.f("ix_inspection_oversight_unit_id"), "inspection_oversight", ["unit_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_inspection_oversight_unit_id"), table_name="inspection_oversight")
    op.drop_table("inspection_oversight")
    op.drop_index(op.f("ix_tracking_tasks_field_id"), table_name="tracking_tasks")
    op.drop_constraint(op.f("fk_tracking_tasks_field_id_tracking_fields"), "tracking_tasks", type_="foreignkey")
    op.drop_column("tracking_tasks", "field_id")
    op.drop_index(op.f("ix_tracking_leader_fields_field_id"), table_name="tracking_leader_fields")
    op.drop_table("tracking_leader_fields")
    op.drop_table("tracking_fields")
