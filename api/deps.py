"""Dependencies shared by every router: the request's DB session and its access policy.

Every route depends on exactly one ``AccessPolicy`` (``Public``, ``Authenticated`` or
``Require``); ``tests/api/test_route_policies.py`` fails for a route without one.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import api_clients, audit, delegations, inspection, mfa, networks, ratelimit
from auth.models import Unit, User
from auth.principal import AuthenticatedDevice, Principal, Restriction
from auth.roles import READ_ONLY_ROLES, Permission, Role, permissions_of
from auth.sessions import resolve_access_token
from auth.step_up import STEP_UP_MESSAGE
from core.after_commit import committed
from core.context import current_context
from core.db import get_autocommit_sessionmaker, get_sessionmaker, transaction, utcnow
from core.errors import ChuongError, Forbidden, Unauthorized
from devices import credentials as device_credentials
from devices import service as devices

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


@dataclass(frozen=True)
class DeviceColumns:
    """What a read-only route reads of a device credential's reader in the credential check's
    own statement (devices/credentials.py): SQL columns over the device row ``d`` whose
    parameters are numbered from ``first``, and those parameters for the request's time."""

    columns: Callable[[int], list[str]]
    parameters: Callable[[dt.datetime], Sequence[object]]


@dataclass(frozen=True)
class DeviceRead:
    """The device row with a route's ``DeviceColumns`` (as named there), and the time its
    parameters were made for."""

    row: Mapping[str, Any]
    now: dt.datetime


# Read-only endpoints, with what they read alongside a device credential's row (or None).
_READ_ONLY: dict[Callable[..., Any], DeviceColumns | None] = {}


def read_only(endpoint: Endpoint) -> Endpoint:
    """Mark a GET endpoint that only reads: called with a device credential, its session runs
    without a transaction (each statement commits on its own, no BEGIN/COMMIT round trips) and
    the credential is checked on a pooled connection's driver, without the session. The read surge after
    a push is that: unread counts and first pages. Authentication's one write (a credential's
    first use) is a single statement; signed-in callers keep the transaction, since their
    authentication may write audit rows, which need one."""
    _READ_ONLY[endpoint] = None
    return endpoint


def read_only_with(columns: DeviceColumns) -> Callable[[Endpoint], Endpoint]:
    """``read_only``, and ``columns`` come back in the device credential check's own statement
    (``device_read``): one round trip for the credential and what the route reads."""

    def mark(endpoint: Endpoint) -> Endpoint:
        _READ_ONLY[endpoint] = columns
        return endpoint

    return mark


# Endpoints that change things, with what they read of a device credential's row in its check.
_DEVICE_ROW: dict[Callable[..., Any], DeviceColumns] = {}


def with_device_row(columns: DeviceColumns) -> Callable[[Endpoint], Endpoint]:
    """A device credential presented to this endpoint is checked as on the read path, in one
    statement on a pooled connection's driver that also reads ``columns`` (``device_read``),
    rather than by loading the device through the session; the request keeps its transaction
    for what it writes. An app's registration at every start: its device row is all it reads."""

    def mark(endpoint: Endpoint) -> Endpoint:
        _DEVICE_ROW[endpoint] = columns
        return endpoint

    return mark


def device_read(request: Request) -> DeviceRead | None:
    """The route's ``read_only_with`` columns, when a device credential was checked with them."""
    found: DeviceRead | None = getattr(request.state, "device_read", None)
    return found


@asynccontextmanager
async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed after the endpoint returns and before the
    response is sent (``scope="function"``), rolled back if anything raised. Jobs the request
    deferred are enqueued only once the commit succeeded (through the enqueuer the app factory
    registered), and its after-commit steps (core/after_commit.py) run before the response goes
    out. A ``read_only`` endpoint called with a device credential gets no transaction."""
    autocommit = (
        request.scope.get("endpoint") in _READ_ONLY
        and request.method in ("GET", "HEAD")
        and is_device_credential(request)
    )
    request.state.autocommit = autocommit
    maker = get_autocommit_sessionmaker() if autocommit else get_sessionmaker()
    session = maker()
    try:
        try:
            yield session
            if not autocommit:  # each statement committed on its own: closing releases the rest
                await session.commit()
        except BaseException:
            await session.rollback()
            await _audit_failed_read(request)
            raise
        await committed(session)
    finally:
        # A device's read may never have needed the session's connection (its credential and
        # count came from one pooled statement, devices/credentials.py): nothing to close then.
        if not autocommit or session.sync_session.in_transaction():
            await session.close()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session (``request_session``), as a dependency."""
    async with request_session(request) as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

ON_BEHALF_OF_HEADER = "x-on-behalf-of"
DEVICE_PERMISSIONS = frozenset({Permission.INBOX_READ, Permission.DEVICES_OWN})


async def _authenticate(request: Request, session: AsyncSession) -> Principal:
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized()
    ctx = current_context()
    if token.startswith(devices.CREDENTIAL_PREFIX):
        device: AuthenticatedDevice
        try:
            if getattr(request.state, "autocommit", False) or request.scope.get("endpoint") in _DEVICE_ROW:
                device = await _authenticate_device_read(request, session, token)
            else:
                device = await devices.authenticate_credential(session, token)
        except ChuongError:
            await limit_by_address(request)  # a refused credential counts too (and a 429 wins)
            raise
        ctx.actor_kind, ctx.actor_id = "device", device.id
        # The address's count was left for here (``Authenticated.__call__``): both limits in one
        # Redis round trip, the address first, as if counted apart.
        await limit_by_address(request, ratelimit.client_limit(f"device:{device.id}"))
        principal = Principal(permissions=DEVICE_PERMISSIONS, unit_id=None, unit_path="", device=device)
    elif token.startswith(api_clients.KEY_PREFIX):
        client, unit_path = await api_clients.authenticate(session, key=token, ip=ctx.ip or "")
        ctx.actor_kind, ctx.actor_id, ctx.unit_id = "api_client", client.id, client.unit_id
        await ratelimit.enforce_client(str(client.id))
        principal = Principal(
            permissions=frozenset(),
            unit_id=client.unit_id,
            unit_path=unit_path,
            api_client=client,
            scopes=frozenset(client.scopes),
        )
    else:
        # A Server-Sent Events (re)connection is the browser's doing, not the person's: it does
        # not keep a staff session from its idle limit (auth/session_limits.py).
        streaming = "text/event-stream" in request.headers.get("accept", "")
        resolved = await resolve_access_token(session, token, activity=not streaming)
        user = resolved.user
        ctx.actor_kind, ctx.actor_id, ctx.unit_id = "user", user.id, user.unit_id
        await ratelimit.enforce_account(str(user.id))
        delegation_id = request.headers.get(ON_BEHALF_OF_HEADER)
        if delegation_id:
            if resolved.restriction is not None:
                raise Forbidden("Complete sign-in first", code=resolved.restriction.value)
            leader, delegation, permissions, leader_path = await delegations.resolve(
                session, delegate=user, delegation_id=_parse_uuid(delegation_id)
            )
            ctx.on_behalf_of_id, ctx.unit_id = leader.id, leader.unit_id
            principal = Principal(
                permissions=permissions,
                unit_id=leader.unit_id,
                unit_path=leader_path,
                user=leader,
                actor=user,
                session=resolved.auth_session,
                delegation=delegation,
                oversees=await _oversees(session, leader),
            )
        else:
            unit_path = (await session.execute(select(Unit.path).where(Unit.id == user.unit_id))).scalar_one()
            principal = Principal(
                permissions=permissions_of(Role(user.role)),
                unit_id=user.unit_id,
                unit_path=unit_path,
                user=user,
                actor=user,
                session=resolved.auth_session,
                restriction=resolved.restriction,
                oversees=await _oversees(session, user),
            )
    request.state.principal = principal
    return principal


async def _authenticate_device_read(
    request: Request, session: AsyncSession, token: str
) -> AuthenticatedDevice:
    """A read-only route's device credential (or a ``with_device_row`` route's): the device's
    reader columns and the route's own (``read_only_with``, ``with_device_row``) in one statement
    on a pooled connection of its own (core/pooled_driver.py)."""
    endpoint = request.scope.get("endpoint")
    wanted = (_READ_ONLY.get(endpoint) or _DEVICE_ROW.get(endpoint)) if endpoint is not None else None
    now = utcnow()
    first = device_credentials.FIRST_ROUTE_PARAMETER
    device, row = await device_credentials.authenticate_on(
        session,
        token,
        columns=wanted.columns(first) if wanted is not None else (),
        parameters=wanted.parameters(now) if wanted is not None else (),
    )
    if wanted is not None:
        request.state.device_read = DeviceRead(row=row, now=now)
    return device


async def _oversees(session: AsyncSession, user: User) -> tuple[str, ...]:
    """An inspector's reach (its committee's overseen units); nothing to look up for the rest."""
    if Role(user.role) not in READ_ONLY_ROLES:
        return ()
    return await inspection.overseen_paths(session, committee_unit_id=user.unit_id)


async def still_authenticated(request: Request) -> bool:
    """Do the request's credentials still hold (for a response that outlives its request, such
    as an SSE stream)? The same checks as ``_authenticate`` (session live, user active, token
    version, session limits, delegation, device credential) in a transaction of their own, but
    neither counted against rate limits nor recorded as activity."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return False
    try:
        async with transaction() as session:
            if token.startswith(devices.CREDENTIAL_PREFIX):
                await devices.authenticate_credential(session, token)
            elif token.startswith(api_clients.KEY_PREFIX):
                return False  # API clients read no inbox
            else:
                resolved = await resolve_access_token(session, token, activity=False)
                delegation_id = request.headers.get(ON_BEHALF_OF_HEADER)
                if delegation_id:
                    await delegations.resolve(
                        session, delegate=resolved.user, delegation_id=_parse_uuid(delegation_id)
                    )
    except ChuongError:
        return False
    return True


def _parse_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise Forbidden("No such delegation for you", code="delegation_invalid") from exc


async def deny(request: Request, *, code: str, message: str, **details: object) -> Forbidden:
    """Audit a refusal (in its own transaction: the request's will roll back) and return the
    error to raise."""
    await audit.record_detached(
        action="permission.denied",
        outcome="denied",
        object_type="route",
        object_id=f"{request.method} {request.url.path}",
        details={"reason": code, **details},
    )
    return Forbidden(message, code=code)


async def refuse_network(request: Request, rule: networks.Rule) -> Forbidden:
    """Audit a request refused by an allowed-networks rule (auth/networks.py) and return the 403
    to raise. The audit row goes through ``deny``'s detached transaction: the request has only
    read, or touched its own session row, which the audit insert never waits for."""
    ip = current_context().ip
    await deny(request, code=networks.NETWORK_NOT_ALLOWED, message="", rule=rule.key)
    return networks.refusal(rule, ip)


async def limit_by_address(request: Request, *more: ratelimit.Limit) -> None:
    """The per-address limit (D-41), counted once per request by whichever access policy runs
    first, with ``more`` limits of the same request in the same Redis round trip. It lives here,
    not in authentication, so that it cannot miss a route: it once ran only once credentials
    were read, and public and optionally-authenticated routes (anonymous ``POST /v1/devices``,
    sign-in, the console's sign-in page) were never counted."""
    if getattr(request.state, "address_limited", False):
        await ratelimit.enforce(*more)
        return
    request.state.address_limited = True
    await ratelimit.enforce(ratelimit.address_limit(current_context().ip or ""), *more)


def is_device_credential(request: Request) -> bool:
    """The request's bearer token is a device credential (not yet checked)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and token.strip().startswith(devices.CREDENTIAL_PREFIX)


class AccessPolicy:
    """Base of every access policy; routes declare one through ``dependencies=`` or a parameter.
    Every policy counts the request against the per-address limit before anything else."""

    description = "access policy"


class Public(AccessPolicy):
    """No authentication (health checks, sign-in, OpenAPI)."""

    description = "public"

    async def __call__(self, request: Request) -> None:
        await limit_by_address(request)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Authenticated(AccessPolicy):
    """Any signed-in user whose session is complete, unless a restriction is explicitly allowed
    (the routes that let a password-only session enrol or verify TOTP).

    ``own_account``: the route changes only the caller's own sign-in (its password, second factor,
    passkeys, sessions), which read-only roles keep; every other non-GET route refuses them."""

    def __init__(
        self,
        *,
        allow: frozenset[Restriction] = frozenset(),
        allow_delegated: bool = True,
        allow_api_client: bool = False,
        allow_device: bool = False,
        step_up: bool = False,
        held_to_networks: bool = True,
        own_account: bool = False,
    ) -> None:
        self.allow = allow
        self.allow_delegated = allow_delegated
        self.allow_api_client = allow_api_client
        self.allow_device = allow_device
        self.step_up = step_up
        self.held_to_networks = held_to_networks
        self.own_account = own_account
        self.description = "authenticated"

    async def __call__(self, request: Request, session: SessionDep) -> Principal:
        return await self.authorize(request, session)

    async def authorize(self, request: Request, session: AsyncSession) -> Principal:
        """The policy's work on the request's session: counted, authenticated, checked (and a
        read-only account's read audited). Dependencies that bring their own session call it."""
        if not is_device_credential(request):
            await limit_by_address(request)
        # else counted with the device's own limit in one round trip once the credential is
        # checked (an apps' surge after a push is all device credentials), or alone if it fails.
        principal = await _authenticate(request, session)
        await self.check(request, principal)
        if principal.is_read_only:
            _audit_read(request, session, principal)
        return principal

    async def check(self, request: Request, principal: Principal) -> None:
        if principal.api_client is not None and not self.allow_api_client:
            raise await deny(request, code="api_client_not_allowed", message="Not available to API clients")
        if principal.device is not None and not self.allow_device:
            raise await deny(
                request, code="device_not_allowed", message="Not available to device credentials"
            )
        if self.held_to_networks and principal.actor is not None and principal.user is not None:
            # The account's role, and the leader's when acting on someone's behalf: a role held
            # to the agencies' networks is held there whatever the route and session state.
            roles = {Role(principal.actor.role), Role(principal.user.role)}
            rule = networks.rules().refusing(current_context().ip, roles=roles)
            if rule is not None:
                raise await refuse_network(request, rule)
        if principal.restriction is not None and principal.restriction not in self.allow:
            raise await deny(
                request,
                code=principal.restriction.value,
                message={
                    Restriction.MFA_ENROLMENT_REQUIRED: "Enrol two-factor authentication first",
                    Restriction.MFA_REQUIRED: "Verify your two-factor code first",
                    Restriction.PASSKEY_REQUIRED: "Sign in with your passkey first",
                    Restriction.PASSWORD_CHANGE_REQUIRED: "Change your password first",
                }[principal.restriction],
            )
        if principal.is_delegated and not self.allow_delegated:
            raise await deny(
                request, code="delegation_not_allowed", message="Not allowed on behalf of someone else"
            )
        if principal.is_read_only and request.method not in SAFE_METHODS and not self.own_account:
            raise await deny(request, code="read_only_role", message="This account can only read")
        if self.step_up and not mfa.step_up_fresh(principal.session, now=utcnow()):
            raise await deny(
                request,
                code="step_up_required",
                message=STEP_UP_MESSAGE,
            )


def _audit_read(request: Request, session: AsyncSession, principal: Principal) -> None:
    """One audit row per request of a read-only account (an inspector): who (the context's actor),
    what (the route, its path and query) and which unit (the ``unit_id`` asked for, else the
    committee's; the overseen units in the details). Written with the request's transaction, so
    it costs no round trip of its own."""
    if request.method not in SAFE_METHODS or getattr(request.state, "read_audited", False):
        return
    request.state.read_audited = True
    # The route's template (``/v1/tracking/tasks/{task_id}``): the path with its parameters named.
    template = request.url.path
    for name, value in request.path_params.items():
        template = template.replace(f"/{value}", f"/{{{name}}}", 1)
    unit = _parse_uuid_or_none(request.query_params.get("unit_id") or request.query_params.get("unit"))
    fields: dict[str, Any] = {
        "action": "inspection.read",
        "object_type": "route",
        "object_id": f"{request.method} {template}",
        "unit_id": unit,
        "details": {
            "path": request.url.path[:512],
            "query": {k: v[:200] for k, v in list(request.query_params.items())[:20]},
            # A unit's path ends with its own id (hex): the overseen units, as ids.
            "overseen": [str(uuid.UUID(p.rstrip("/").rsplit("/", 1)[-1])) for p in principal.oversees[:50]],
        },
    }
    audit.record(session, **fields)
    request.state.read_audit = fields


async def _audit_failed_read(request: Request) -> None:
    """A read-only account's read that failed (a 404, a 422, an error) rolled its audit row
    back with the request: write it again in a transaction of its own, as a failure, so that
    probing for what exists is on the record too (D-25)."""
    fields: dict[str, Any] | None = getattr(request.state, "read_audit", None)
    if fields is None:
        return
    request.state.read_audit = None
    await audit.record_detached(**fields, outcome="failure")


def _parse_uuid_or_none(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


class OptionalAuthenticated(Authenticated):
    """Anonymous callers pass as ``None``; a caller that sends credentials must pass them all
    (a password-only session is refused here too)."""

    async def __call__(self, request: Request, session: SessionDep) -> Principal | None:  # type: ignore[override]
        if not request.headers.get("authorization"):
            await limit_by_address(request)
            return None
        return await super().__call__(request, session)


class Require(Authenticated):
    """A signed-in user holding every listed permission, or an API client holding ``scope``."""

    def __init__(
        self,
        *permissions: Permission,
        scope: str | None = None,
        step_up: bool = False,
        allow_delegated: bool = True,
    ) -> None:
        super().__init__(allow_delegated=allow_delegated, allow_api_client=scope is not None, step_up=step_up)
        self.permissions = frozenset(permissions)
        self.scope = scope
        self.description = " + ".join(sorted(p.value for p in self.permissions)) or "authenticated"

    async def check(self, request: Request, principal: Principal) -> None:
        await super().check(request, principal)
        if principal.api_client is not None:
            if self.scope not in principal.scopes:
                raise await deny(
                    request, code="missing_scope", message=f"API client lacks scope {self.scope}"
                )
            return
        missing = sorted(p.value for p in self.permissions - principal.permissions)
        if missing:
            raise await deny(
                request, code="permission_denied", message="You do not have permission", missing=missing
            )
        rule = networks.rules().refusing(current_context().ip, permissions=self.permissions)
        if rule is not None:
            raise await refuse_network(request, rule)


class SystemAdmin(Require):
    """``Require`` for what is one per deployment (the working calendar, the SMS fallback, the push
    breakers, the catalogue of fields): the permissions and a system admin's reach (every unit).
    A unit admin holding the same permission is refused with ``code``. The API and the console
    name these same policies, so neither can grant what the other refuses."""

    def __init__(
        self,
        *permissions: Permission,
        code: str = "permission_denied",
        message: str = "Only system admins do this",
        step_up: bool = False,
        allow_delegated: bool = True,
    ) -> None:
        super().__init__(*permissions, step_up=step_up, allow_delegated=allow_delegated)
        self.code = code
        self.message = message
        self.description = f"{self.description} (system admin)"

    async def check(self, request: Request, principal: Principal) -> None:
        await super().check(request, principal)  # sign-in restrictions and permissions come first
        if not principal.sees_all_units:
            raise await deny(request, code=self.code, message=self.message)


class CalendarAdmin(SystemAdmin):
    """System admins keep the deployment-wide working calendar (one calendar for every unit)."""

    def __init__(self) -> None:
        super().__init__(
            Permission.UNITS_WRITE, code="permission_denied", message="Only system admins edit the calendar"
        )


class SmsOperator(SystemAdmin):
    """The SMS fallback's switch and the push breakers: system administrators only (docs/sms.md)."""

    def __init__(self, *, step_up: bool = False, allow_delegated: bool = True) -> None:
        super().__init__(
            Permission.AUDIT_READ,
            code="system_admin_only",
            message="Only system administrators manage the SMS fallback",
            step_up=step_up,
            allow_delegated=allow_delegated,
        )


def require(*permissions: Permission, step_up: bool = False, allow_delegated: bool = True) -> Principal:
    """``principal: Principal = require(Permission.X)`` in an endpoint signature."""
    return Depends(Require(*permissions, step_up=step_up, allow_delegated=allow_delegated))  # type: ignore[no-any-return]


CurrentPrincipal = Annotated[Principal, Depends(Authenticated())]
PUBLIC = Depends(Public())

# The sign-in steps' policies, named once: the API's /v1/auth routes and the console's sign-in
# pages depend on these same objects, so a restricted session may do exactly the same in both.
SignedIn = Depends(Authenticated(allow=frozenset(Restriction), own_account=True))
Enrolling = Depends(
    Authenticated(
        allow=frozenset({Restriction.MFA_ENROLMENT_REQUIRED}), allow_delegated=False, own_account=True
    )
)
Verifying = Depends(
    Authenticated(allow=frozenset({Restriction.MFA_REQUIRED, Restriction.PASSKEY_REQUIRED}), own_account=True)
)
# Signing out only takes power away: a leader whose role is held to the agencies' networks can
# still end a session from a hotel (a stolen laptop's session must not outlive the trip).
SigningOut = Depends(Authenticated(allow=frozenset(Restriction), held_to_networks=False, own_account=True))
# Ending one's own other sessions (a lost phone, from a hotel) likewise, with a complete session;
# read-only roles (inspectors) keep both.
EndingOwnSessions = Depends(Authenticated(held_to_networks=False, own_account=True))
ChangingPassword = Depends(
    Authenticated(
        allow=frozenset({Restriction.PASSWORD_CHANGE_REQUIRED}), allow_delegated=False, own_account=True
    )
)
FullSession = Depends(Authenticated())
# The caller acting as themself, not on behalf of someone (their own delegations).
OwnAccount = Depends(Authenticated(allow_delegated=False))


async def ensure_step_up(request: Request, principal: Principal) -> None:
    """For actions that are sensitive only for some inputs (e.g. granting an admin role)."""
    if not mfa.step_up_fresh(principal.session, now=utcnow()):
        raise await deny(
            request,
            code="step_up_required",
            message=STEP_UP_MESSAGE,
        )


def require_or_scope(*permissions: Permission, scope: str, step_up: bool = False) -> Principal:
    """Staff holding the permissions, or an API client holding ``scope``."""
    return Depends(Require(*permissions, scope=scope, step_up=step_up))  # type: ignore[no-any-return]
