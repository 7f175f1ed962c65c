"""apps as data: code, name, platforms, FCM project and APNs topic, languages, anonymous devices

Revision ID: 0020
Revises: 0022
Create Date: 2026-12-05 09:30:00

Issue 19 item 6: the apps were a hard-coded pair. The two that exist are seeded with today's
behaviour (both platforms, every language, the configured FCM project and APNs topic, anonymous
devices for the portal only), so nothing changes for an existing install.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0020"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    apps = op.create_table(
        "apps",
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "platforms",
            postgresql.ARRAY(sa.String(16)),
            server_default=sa.text("'{android,ios}'"),
            nullable=False,
        ),
        sa.Column("fcm_project_id", sa.String(64), nullable=True),
        sa.Column("apns_topic", sa.String(255), nullable=True),
        sa.Column(
            "languages",
            postgresql.ARRAY(sa.String(8)),
            server_default=sa.text("'{vi,en,zh,fr,es,ru}'"),
            nullable=False,
        ),
        sa.Column("anonymous_devices", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("code ~ '^[a-z][a-z0-9-]{1,15}$'", name=op.f("ck_apps_code")),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_apps")),
    )
    op.bulk_insert(
        apps,
        [
            {"code": "portal", "name": "Cổng thông tin điện tử Đảng", "anonymous_devices": True},
            {"code": "tracking", "name": "Theo dõi, đánh giá nhiệm vụ", "anonymous_devices": False},
        ],
    )


def downgrade() -> None:
    op.drop_table("apps")
