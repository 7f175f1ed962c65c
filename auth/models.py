"""Accounts: units, users, TOTP credentials, passkeys, sessions, refresh tokens, delegations, API clients,
MFA reset requests."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.crypto import FIELD_ENCRYPTED
from core.db import Base, Timestamps, UUIDPrimaryKey


class Unit(UUIDPrimaryKey, Timestamps, Base):
    """A node of the organisation tree. ``path`` is the materialised path of ids
    (``<root>/<child>/…/<self>/``) so that "inside my subtree" is one indexed prefix match."""

    __tablename__ = "units"

    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"))
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(Text, unique=True)
    depth: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_units_path_prefix", "path", postgresql_ops={"path": "text_pattern_ops"}),)


class User(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    full_name: Mapped[str] = mapped_column(String(255))
    position: Mapped[str | None] = mapped_column(String(255))
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    # Encrypted with a key from settings (D-21); never stored in clear.
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary, info={FIELD_ENCRYPTED: True})
    citizen_id_enc: Mapped[bytes | None] = mapped_column(LargeBinary, info={FIELD_ENCRYPTED: True})

    password_hash: Mapped[str] = mapped_column(Text)
    password_changed_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
    must_change_password: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    disabled_at: Mapped[dt.datetime | None]
    # Bumped on every change that must end existing tokens (disable, role/unit change, reset).
    token_version: Mapped[int] = mapped_column(Integer, server_default=text("1"))

    # Per-account throttling of password and TOTP failures (not per IP, D-41).
    failed_attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    throttled_until: Mapped[dt.datetime | None]
    locked_until: Mapped[dt.datetime | None]

    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    unit: Mapped[Unit] = relationship(lazy="raise")

    __table_args__ = (Index("ix_users_unit_role", "unit_id", "role"),)


class TotpCredential(Base):
    """One TOTP secret per user. ``last_used_step`` makes every code single-use: a code is accepted
    by one conditional UPDATE that only succeeds when its time step is newer."""

    __tablename__ = "totp_credentials"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary, info={FIELD_ENCRYPTED: True})
    created_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
    confirmed_at: Mapped[dt.datetime | None]
    last_used_step: Mapped[int | None] = mapped_column(BigInteger)


class RecoveryCode(UUIDPrimaryKey, Base):
    __tablename__ = "recovery_codes"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[dt.datetime | None]

    __table_args__ = (UniqueConstraint("user_id", "code_hash"),)


class WebauthnCredential(UUIDPrimaryKey, Base):
    """A passkey or security key of a user (WebAuthn, auth/passkeys.py). Only the public key is
    kept; ``sign_count`` is the authenticator's counter at its last use, which must grow (a
    counter that goes back means the key was copied: ``clone_suspected_at`` then refuses it)."""

    __tablename__ = "webauthn_credentials"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # At most 1023 bytes (WebAuthn Level 3 §5.8.3); checked before the insert and by the table.
    credential_id: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    name: Mapped[str] = mapped_column(String(64))
    aaguid: Mapped[str] = mapped_column(String(36))
    attestation_format: Mapped[str] = mapped_column(String(32))
    backed_up: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    transports: Mapped[list[str]] = mapped_column(ARRAY(String(16)), server_default=text("'{}'"))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
    last_used_at: Mapped[dt.datetime | None]
    clone_suspected_at: Mapped[dt.datetime | None]

    __table_args__ = (CheckConstraint("octet_length(credential_id) <= 1023", name="credential_id_length"),)


class AuthSession(UUIDPrimaryKey, Base):
    """A signed-in device or browser. Access tokens name their session, and every request checks
    that the session is live, so ending a session takes effect on the next request."""

    __tablename__ = "auth_sessions"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
    last_seen_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
    expires_at: Mapped[dt.datetime]
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    # Set when a second factor was verified; step-up checks its age.
    mfa_verified_at: Mapped[dt.datetime | None]
    # Which one: totp | recovery_code | passkey. A role that must use its passkeys (auth/
    # passkey_policy.py) is not signed in by anything but "passkey".
    mfa_method: Mapped[str | None] = mapped_column(String(16))
    revoked_at: Mapped[dt.datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(64))


class RefreshToken(UUIDPrimaryKey, Base):
    """Refresh tokens are stored hashed and rotated on use. Presenting a token that was already
    rotated means it leaked: the whole session (the token family) is revoked."""

    __tablename__ = "refresh_tokens"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]


class Delegation(UUIDPrimaryKey, Base):
    """A leader (principal) lets an assistant (delegate) act on their behalf (D-24). What the
    delegate may do is ``permissions`` ∩ the principal's rights at the time of each request."""

    __tablename__ = "delegations"

    principal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    delegate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    permissions: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    revoked_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class ApiClient(UUIDPrimaryKey, Timestamps, Base):
    """A connected system of a unit (D-40). The key is shown once; only its keyed hash is kept."""

    __tablename__ = "api_clients"

    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    # After a rotation the previous key keeps working for a grace period, so that the connected
    # system can roll out the new key without an outage.
    previous_key_hash: Mapped[str | None] = mapped_column(String(64))
    previous_key_expires_at: Mapped[dt.datetime | None]
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    ip_allowlist: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default=text("'{}'"))
    status: Mapped[str] = mapped_column(String(16), server_default=text("'active'"))
    suspended_at: Mapped[dt.datetime | None]
    rotated_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class MfaResetRequest(UUIDPrimaryKey, Base):
    """One admin asks, a different admin who may also manage the account confirms (four eyes,
    auth/mfa_reset.py): resetting someone's second factor is how an account is taken over, so one
    person must not be able to do it alone. The table keeps the name it had when only the console
    offered the reset; the API and the console now share it."""

    __tablename__ = "console_mfa_reset_requests"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    requested_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    reason: Mapped[str | None] = mapped_column(String(500))
    requested_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    # pending | confirmed | cancelled
    status: Mapped[str] = mapped_column(String(16), server_default=text("'pending'"))
    decided_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[dt.datetime | None]

    __table_args__ = (
        # At most one open request per account.
        Index(
            "uq_console_mfa_reset_requests_pending",
            "user_id",
            unique=True,
            postgresql_where=text("status = 'pending'"),
        ),
    )


class InspectionOversight(Base):
    """An inspection committee (Ủy ban Kiểm tra) and one unit it oversees: the committee is a unit
    of the tree, and its ``inspector`` accounts read the tasks of the overseen units' subtrees,
    read-only (auth/inspection.py). Kept as rows, not derived from the tree: a committee oversees
    units that are not below it (a provincial committee oversees the province's agencies)."""

    __tablename__ = "inspection_oversight"

    committee_unit_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("units.id", ondelete="CASCADE"), primary_key=True
    )
    unit_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("units.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
