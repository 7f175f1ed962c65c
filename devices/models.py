"""The device registry: one row per push token (per provider)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import ARRAY, CIDR  # this ARRAY has overlap() (&&)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, Timestamps, UUIDPrimaryKey
from core.netaddr import Network


class Device(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "devices"

    app: Mapped[str] = mapped_column(String(16))  # an apps.code (devices/apps.py)
    platform: Mapped[str] = mapped_column(String(16))  # android | ios
    provider: Mapped[str] = mapped_column(String(8))  # fcm | apns
    apns_environment: Mapped[str | None] = mapped_column(String(16))  # sandbox | production
    token: Mapped[str] = mapped_column(String(1024))
    locale: Mapped[str] = mapped_column(String(8), server_default=text("'vi'"))
    time_zone: Mapped[str] = mapped_column(String(64), server_default=text("'Asia/Ho_Chi_Minh'"))
    app_version: Mapped[str | None] = mapped_column(String(32))
    # ``app_version`` as one comparable number (devices.schemas.version_code), NULL if unparsable.
    app_version_code: Mapped[int | None] = mapped_column(BigInteger)
    province: Mapped[str | None] = mapped_column(String(32))  # region code for news audiences
    topics: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default=text("'{}'"))
    # Linked account; NULL for anonymous portal readers, who hold a device credential instead.
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    credential_hash: Mapped[str | None] = mapped_column(String(64))
    # The network (IPv4 /24, IPv6 /64) the registration came from, with ``created_at`` the record
    # of an anonymous registration (they are not audited one by one), and what an operator
    # looks at and purges by after a registration flood (devices/floods.py).
    registered_network: Mapped[Network | None] = mapped_column(CIDR)
    # First time the device's credential was presented: a device that never came back with it
    # never read anything, which is what a registration flood looks like.
    credential_used_at: Mapped[dt.datetime | None]
    last_seen_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
    # Set when the provider says the token is dead (UNREGISTERED, 410, BadDeviceToken) or the
    # owner unregisters; such devices are never sent to and are purged by a cron job.
    invalidated_at: Mapped[dt.datetime | None]
    invalid_reason: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("provider", "token", name="uq_devices_provider_token"),
        Index("ix_devices_user", "user_id", postgresql_where=text("user_id IS NOT NULL")),
        # Audience scans walk live devices of one app in id order (keyset pagination).
        Index("ix_devices_app_live", "app", "id", postgresql_where=text("invalidated_at IS NULL")),
        Index("ix_devices_topics", "topics", postgresql_using="gin"),
        Index("ix_devices_last_seen", "last_seen_at"),
        # Flood review and purge: anonymous registrations by time (then network).
        Index(
            "ix_devices_anonymous_created",
            "created_at",
            postgresql_where=text("user_id IS NULL"),
        ),
    )


class AccountTopic(Base):
    """Sections a signed-in reader follows (per account, all their portal devices): the source
    the account's devices' ``topics`` are rebuilt from when a device is linked or follows change."""

    __tablename__ = "account_topics"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    app: Mapped[str] = mapped_column(String(16), primary_key=True)
    topic: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))


class App(Timestamps, Base):
    """An app whose devices register here and whose notifications go out (issue 19 item 6):
    the value ``devices.app`` and ``notifications.app`` carry is its ``code``. The portal and
    tracking apps are seeded by the migration; operators add more (devices/apps.py)."""

    __tablename__ = "apps"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    # A disabled app takes no new registrations and no new notifications; what it has keeps working.
    enabled: Mapped[bool] = mapped_column(server_default=text("true"))
    platforms: Mapped[list[str]] = mapped_column(ARRAY(String(16)), server_default=text("'{android,ios}'"))
    # NULL: the configured ones (CHUONG_FCM_PROJECT_ID or the service account's project;
    # CHUONG_APNS_TOPIC). Same credentials either way: the service account must be allowed to
    # send for the project, and the .p8 key belongs to the team that owns the bundle id.
    fcm_project_id: Mapped[str | None] = mapped_column(String(64))
    apns_topic: Mapped[str | None] = mapped_column(String(255))
    languages: Mapped[list[str]] = mapped_column(
        ARRAY(String(8)), server_default=text("'{vi,en,zh,fr,es,ru}'")
    )
    # Whether a device may register without an account (and get a device credential).
    anonymous_devices: Mapped[bool] = mapped_column(server_default=text("false"))

    __table_args__ = (CheckConstraint("code ~ '^[a-z][a-z0-9-]{1,15}$'", name="code"),)
