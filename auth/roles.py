"""Roles, permissions and what each role may do (D-20, D-22).

Permissions are checked on the server for every route (``api.deps.require``). Roles are ranked
only to stop an admin from granting a role above their own.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    SYSTEM_ADMIN = "system_admin"
    UNIT_ADMIN = "unit_admin"
    PUBLISHER = "publisher"
    EDITOR = "editor"
    REPORTER = "reporter"
    TASK_OFFICER = "task_officer"
    TASK_APPROVER = "task_approver"
    LEADER = "leader"
    MEMBER = "member"
    # An inspection committee's member (Ủy ban Kiểm tra): reads the tasks of the units the
    # committee oversees (auth/inspection.py) and writes nothing.
    INSPECTOR = "inspector"


class Permission(StrEnum):
    UNITS_READ = "units:read"
    UNITS_WRITE = "units:write"
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    USERS_UNLOCK = "users:unlock"
    SESSIONS_MANAGE = "sessions:manage"
    AUDIT_READ = "audit:read"
    API_CLIENTS_MANAGE = "api_clients:manage"
    DELEGATIONS_GRANT = "delegations:grant"
    NEWS_DRAFT = "news:draft"
    NEWS_EDIT = "news:edit"
    NEWS_APPROVE = "news:approve"
    NOTIFICATIONS_SEND = "notifications:send"
    NOTIFICATIONS_READ = "notifications:read"
    TASKS_READ = "tasks:read"
    TASKS_WRITE = "tasks:write"
    TASKS_APPROVE = "tasks:approve"
    DASHBOARD_READ = "dashboard:read"
    INBOX_READ = "inbox:read"
    DEVICES_OWN = "devices:own"
    # Registration floods: see and purge anonymous registrations (system admins only).
    DEVICES_ADMIN = "devices:admin"
    # The service's live figures (backlog, rates, breakers) on the console's home: the operators,
    # i.e. system and unit admins. Service-wide, not per unit: they name no unit, user or push.
    OPERATIONS_READ = "operations:read"
    # The apps devices register for and pushes go to (their FCM project and APNs topic): system
    # admins only, like the registration floods; service-wide.
    APPS_MANAGE = "apps:manage"


_P = Permission
_SELF_SERVICE = {_P.INBOX_READ, _P.DEVICES_OWN}
_ADMIN = {
    _P.UNITS_READ,
    _P.UNITS_WRITE,
    _P.USERS_READ,
    _P.USERS_WRITE,
    _P.USERS_UNLOCK,
    _P.SESSIONS_MANAGE,
    _P.AUDIT_READ,
    _P.API_CLIENTS_MANAGE,
    _P.NOTIFICATIONS_READ,
    _P.OPERATIONS_READ,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.SYSTEM_ADMIN: frozenset(Permission),
    Role.UNIT_ADMIN: frozenset(_ADMIN | _SELF_SERVICE),
    Role.PUBLISHER: frozenset(
        {_P.NEWS_DRAFT, _P.NEWS_EDIT, _P.NEWS_APPROVE, _P.NOTIFICATIONS_SEND, _P.NOTIFICATIONS_READ}
        | {_P.UNITS_READ}
        | _SELF_SERVICE
    ),
    Role.EDITOR: frozenset(
        {_P.NEWS_DRAFT, _P.NEWS_EDIT, _P.NOTIFICATIONS_READ, _P.UNITS_READ} | _SELF_SERVICE
    ),
    Role.REPORTER: frozenset({_P.NEWS_DRAFT} | _SELF_SERVICE),
    Role.TASK_OFFICER: frozenset({_P.TASKS_READ, _P.TASKS_WRITE, _P.UNITS_READ} | _SELF_SERVICE),
    Role.TASK_APPROVER: frozenset(
        {_P.TASKS_READ, _P.TASKS_WRITE, _P.TASKS_APPROVE, _P.UNITS_READ, _P.DASHBOARD_READ} | _SELF_SERVICE
    ),
    Role.LEADER: frozenset(
        {_P.TASKS_READ, _P.DASHBOARD_READ, _P.UNITS_READ, _P.NOTIFICATIONS_READ, _P.DELEGATIONS_GRANT}
        | _SELF_SERVICE
    ),
    Role.MEMBER: frozenset(_SELF_SERVICE),
    # No self-service either: registering a device or marking the inbox read are writes.
    Role.INSPECTOR: frozenset({_P.TASKS_READ, _P.DASHBOARD_READ}),
}

# Higher may grant lower or equal; the rest of the roles sit at the same level.
ROLE_RANK: dict[Role, int] = {Role.SYSTEM_ADMIN: 3, Role.UNIT_ADMIN: 2}

# Roles whose sessions need an enrolled and verified TOTP (D-22: everyone but plain readers).
MFA_EXEMPT_ROLES = frozenset({Role.MEMBER})

# Roles that write nothing: every route but the account's own sign-in refuses their non-GET
# requests (``api.deps.Authenticated``), and each of their reads is audited.
READ_ONLY_ROLES = frozenset({Role.INSPECTOR})

# Permissions a delegate can never receive, whatever the leader holds (D-24).
NON_DELEGABLE = frozenset({_P.DELEGATIONS_GRANT})


def rank(role: Role) -> int:
    return ROLE_RANK.get(role, 1)


def can_grant(granter: Role, role: Role) -> bool:
    return rank(role) <= rank(granter) and (role != Role.SYSTEM_ADMIN or granter == Role.SYSTEM_ADMIN)


def permissions_of(role: Role) -> frozenset[Permission]:
    return ROLE_PERMISSIONS[role]
