"""The authenticated caller of one request, and what it may do."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from auth.models import ApiClient, AuthSession, Delegation, User
from auth.roles import READ_ONLY_ROLES, Permission, Role


class AuthenticatedDevice(Protocol):
    """An anonymous app device that presented its device credential: what the callers of a device
    principal read of it. ``devices.models.Device`` is one. Auth does not import devices: devices
    depend on auth (their changes are audited in auth's log), not the reverse."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def app(self) -> str: ...

    @property
    def provider(self) -> str: ...

    @property
    def token(self) -> str: ...

    @property
    def locale(self) -> str: ...

    @property
    def created_at(self) -> dt.datetime: ...

    # Settable: a portal reader's followed sections are its device's topics (news/sections.py).
    topics: list[str]


class Restriction(StrEnum):
    """Why a session may not yet use the API: only the routes that lift the restriction work."""

    MFA_ENROLMENT_REQUIRED = "mfa_enrolment_required"
    MFA_REQUIRED = "mfa_required"
    # A role that must use its passkeys (auth/passkey_policy.py) holds one and has not used it.
    PASSKEY_REQUIRED = "passkey_required"
    PASSWORD_CHANGE_REQUIRED = "password_change_required"  # noqa: S105 (a state name)


@dataclass
class Principal:
    """``user`` is whose rights apply (the leader when a delegate acts on their behalf);
    ``actor`` is who is actually at the keyboard. They differ only under a delegation."""

    permissions: frozenset[Permission]
    unit_id: uuid.UUID | None
    unit_path: str
    user: User | None = None
    actor: User | None = None
    session: AuthSession | None = None
    delegation: Delegation | None = None
    api_client: ApiClient | None = None
    # An anonymous portal-app device authenticated by its device credential.
    device: AuthenticatedDevice | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    restriction: Restriction | None = None
    # An inspector's reach: the paths of the units its committee oversees (auth/inspection.py).
    oversees: tuple[str, ...] = ()

    @property
    def is_delegated(self) -> bool:
        return self.delegation is not None

    @property
    def role(self) -> Role | None:
        return Role(self.user.role) if self.user is not None else None

    @property
    def user_id(self) -> uuid.UUID:
        assert self.user is not None, "not a user principal"
        return self.user.id

    def has(self, permission: Permission) -> bool:
        return permission in self.permissions

    @property
    def is_read_only(self) -> bool:
        """An inspector, or someone acting for one: reads only (auth/roles.py READ_ONLY_ROLES)."""
        accounts = (self.user, self.actor)
        return any(account is not None and Role(account.role) in READ_ONLY_ROLES for account in accounts)

    @property
    def read_paths(self) -> tuple[str, ...]:
        """The unit subtrees whose tracking data this principal reads: the overseen units for an
        inspector, else its own unit's subtree (tracking/scope.py; system admins read all)."""
        if self.role in READ_ONLY_ROLES:
            return self.oversees
        return (self.unit_path,) if self.unit_path else ()

    @property
    def sees_all_units(self) -> bool:
        return self.role == Role.SYSTEM_ADMIN

    def can_manage_unit(self, unit_path: str) -> bool:
        """Admins act only inside their own subtree (object-level check, D-20)."""
        return self.sees_all_units or (bool(self.unit_path) and unit_path.startswith(self.unit_path))
