"""device registration origin: the network a device registered from, first credential use

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 00:10:00

Anonymous registrations are no longer audited one by one (issue 12, item 5): the device row is
their record, with the network it came from. ``credential_used_at`` tells a device that came
back with its credential from one that never did (what a registration flood leaves behind).
Existing devices keep NULL for both: their origin is unknown, and a NULL ``credential_used_at``
on an old row does not make it purgeable by network (the purge matches a network).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("devices", sa.Column("registered_network", postgresql.CIDR(), nullable=True))
    op.add_column("devices", sa.Column("credential_used_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_devices_anonymous_created",
        "devices",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("user_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_devices_anonymous_created", table_name="devices")
    op.drop_column("devices", "credential_used_at")
    op.drop_column("devices", "registered_network")
