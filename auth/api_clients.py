"""Connected systems of a unit (D-40): API keys, scopes, IP allow-lists, rotation, suspension.

A key reads ``chk_<key_id>_<secret>``. ``key_id`` is public and finds the row; only a keyed hash
of the whole key is stored, so a database thief learns nothing usable. ``key_id`` survives
rotation, so the previous key still finds its row during the grace period. Every request reads
the row, so a suspension or a changed allow-list applies to the very next request.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import ipaddress
import json
import re
import secrets
import string
import uuid
from enum import StrEnum
from typing import Literal

from redis.exceptions import RedisError
from sqlalchemy import select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import ColumnElement

from auth import audit
from auth.models import ApiClient, Unit
from auth.principal import Principal
from auth.step_up import require_fresh_step_up
from auth.units import get_unit
from core.crypto import keyed_hash
from core.db import utcnow
from core.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from core.redis import get_redis
from core.types import clean_text


class ApiScope(StrEnum):
    """What a connected system may do. Later features add their scopes here and name them in
    ``Require(..., scope=ApiScope.X)``."""

    NOTIFICATIONS_SEND = "notifications:send"
    TRACKING_WRITE = "tracking:write"
    DEVICES_READ = "devices:read"
    AUDIT_READ = "audit:read"


KEY_PREFIX = "chk_"
ACTIVE, SUSPENDED = "active", "suspended"
# Alphanumeric only, so that "_" unambiguously ends the key id.
_KEY_ID_ALPHABET = string.ascii_letters + string.digits
_KEY_ID_LENGTH = 12
_SECRET_BYTES = 32
_KEY_SHAPE = re.compile(rf"^{KEY_PREFIX}([A-Za-z0-9]{{{_KEY_ID_LENGTH}}})_[A-Za-z0-9_-]{{40,100}}$")
# Writing last_used_at on every request would turn each call into a row update.
_LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def _new_key(key_id: str) -> str:
    return f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(_SECRET_BYTES)}"


def _invalid() -> Unauthorized:
    return Unauthorized("Invalid API key", code="invalid_api_key")


def key_in_use(client: ApiClient, key: str) -> Literal["current", "previous"] | None:
    """Which of the client's keys ``key`` is: the current one, the previous one within its grace
    period, or neither. Both comparisons always run, in constant time."""
    presented = keyed_hash(key)
    current = hmac.compare_digest(presented, client.key_hash)
    previous = hmac.compare_digest(presented, client.previous_key_hash or "")
    if current:
        return "current"
    expires = client.previous_key_expires_at
    if previous and client.previous_key_hash and expires is not None and utcnow() < expires:
        return "previous"
    return None


async def authenticate(session: AsyncSession, *, key: str, ip: str) -> tuple[ApiClient, str]:
    """The client owning ``key`` and its unit's path, if the key is valid, the client is active
    and ``ip`` is on its allow-list."""
    match = _KEY_SHAPE.match(key)
    if match is None:
        raise _invalid()
    found = await _with_unit_path(session, ApiClient.key_id == match[1])
    if found is None:
        raise _invalid()
    client, unit_path = found
    if key_in_use(client, key) is None:
        await _audit_denied(client, reason="wrong_key", ip=ip)
        raise _invalid()
    # The allow-list first: a key leaked outside the network learns nothing about the client.
    if not ip_allowed(client.ip_allowlist, ip):
        await _audit_denied(client, reason="ip_not_allowed", ip=ip)
        raise Forbidden("Calls from this address are not allowed for this API client", code="ip_not_allowed")
    if client.status != ACTIVE:
        await _audit_denied(client, reason="suspended", ip=ip)
        raise Forbidden("This API client is suspended", code="api_client_suspended")
    await _touch(session, client)
    return client, unit_path


async def _with_unit_path(
    session: AsyncSession, condition: ColumnElement[bool], *, lock: bool = False
) -> tuple[ApiClient, str] | None:
    query = select(ApiClient, Unit.path).join(Unit, Unit.id == ApiClient.unit_id).where(condition)
    if lock:
        query = query.with_for_update(of=ApiClient)
    row = (await session.execute(query)).first()
    return None if row is None else (row.ApiClient, row.path)


def ip_allowed(allowlist: list[str], ip: str) -> bool:
    if not allowlist:
        return True
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(cidr, strict=False) for cidr in allowlist)


async def _audit_denied(client: ApiClient, *, reason: str, ip: str) -> None:
    """Audit a refused call in a transaction of its own (the request rolls back). A suspended
    system retrying in a loop would flood the audit chain, so one row per client, reason and
    address per minute is enough for an investigation."""
    try:
        first = await get_redis().set(f"chuong:denied:{client.id}:{reason}:{ip}", "1", ex=60, nx=True)
    except RedisError:
        first = True  # without Redis, rather too many rows than none
    if first:
        await audit.record_detached(
            action="api_client.denied",
            outcome="denied",
            object_type="api_client",
            object_id=client.id,
            actor_kind="api_client",
            actor_id=client.id,
            unit_id=client.unit_id,
            details={"reason": reason, "key_id": client.key_id, "ip": ip},
        )


async def _touch(session: AsyncSession, client: ApiClient) -> None:
    now = utcnow()
    if client.last_used_at is not None and now - client.last_used_at < _LAST_USED_RESOLUTION:
        return
    # SKIP LOCKED: a concurrent request of the same client is already writing it; never wait.
    # updated_at is kept: being used is not a change of the client.
    locked = select(ApiClient.id).where(ApiClient.id == client.id).with_for_update(skip_locked=True)
    written = (
        await session.execute(
            update(ApiClient)
            .where(ApiClient.id.in_(locked.scalar_subquery()))
            .values(last_used_at=now, updated_at=ApiClient.updated_at)
            .returning(ApiClient.last_used_at)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none()
    if written is not None:
        set_committed_value(client, "last_used_at", written)


# --- management (unit admins, inside their subtree) ---


async def create_client(
    session: AsyncSession,
    *,
    principal: Principal,
    unit_id: uuid.UUID,
    name: str,
    scopes: list[ApiScope],
    ip_allowlist: list[str],
) -> tuple[ApiClient, str]:
    """Returns the client and its key; the key is never retrievable again."""
    unit = await get_unit(session, principal=principal, unit_id=unit_id)
    require_fresh_step_up(principal)
    key_id = "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(_KEY_ID_LENGTH))
    key = _new_key(key_id)
    client = ApiClient(
        id=uuid.uuid4(),
        unit_id=unit.id,
        name=name,
        key_id=key_id,
        key_hash=keyed_hash(key),
        scopes=_scopes(scopes),
        ip_allowlist=ip_allowlist,
        status=ACTIVE,
        created_by_id=principal.user.id if principal.user else None,
    )
    session.add(client)
    await session.flush()
    await session.refresh(client)
    audit.record(
        session,
        action="api_client.created",
        object_type="api_client",
        object_id=client.id,
        unit_id=unit.id,
        details={"name": name, "key_id": key_id, "scopes": client.scopes, "ip_allowlist": ip_allowlist},
    )
    return client, key


async def get_client(
    session: AsyncSession, *, principal: Principal, client_id: uuid.UUID, lock: bool = False
) -> ApiClient:
    """A client of a unit in the principal's subtree, or 404 (never confirm other ids exist).
    ``lock``: for a change, which reads the row and writes it back; two at once (a double click)
    would both read the same row, so that a rotation answered a key that never worked, or a
    client was suspended twice."""
    found = await _with_unit_path(session, ApiClient.id == client_id, lock=lock)
    if found is None or not principal.can_manage_unit(found[1]):
        raise NotFound("API client not found")
    return found[0]


async def list_clients(
    session: AsyncSession, *, principal: Principal, limit: int, cursor: str | None, unit_id: uuid.UUID | None
) -> tuple[list[ApiClient], str | None]:
    query = (
        select(ApiClient)
        .join(Unit, Unit.id == ApiClient.unit_id)
        .order_by(ApiClient.name, ApiClient.id)
        .limit(limit + 1)
    )
    if not principal.sees_all_units:
        query = query.where(Unit.path.startswith(principal.unit_path, autoescape=True))
    if unit_id is not None:
        query = query.where(ApiClient.unit_id == unit_id)
    if cursor:
        name, last_id = _decode_cursor(cursor)
        query = query.where(tuple_(ApiClient.name, ApiClient.id) > tuple_(name, last_id))
    clients = list((await session.execute(query)).scalars())
    next_cursor = None
    if len(clients) > limit:
        last = clients[limit - 1]
        next_cursor = base64.urlsafe_b64encode(json.dumps([last.name, str(last.id)]).encode()).decode()
    return clients[:limit], next_cursor


def _decode_cursor(cursor: str) -> tuple[str, uuid.UUID]:
    try:
        name, last_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        # A name with NUL or a lone surrogate would reach the query (a 500): not our cursor.
        return clean_text(str(name)), uuid.UUID(str(last_id))
    except (ValueError, TypeError) as exc:
        raise BadRequest("Invalid cursor", code="invalid_cursor") from exc


async def rotate(
    session: AsyncSession, *, principal: Principal, client_id: uuid.UUID, grace_seconds: int
) -> tuple[ApiClient, str]:
    """A new secret under the same key id. The key being replaced keeps working for
    ``grace_seconds``; a key rotated out earlier stops now (only one previous key is kept)."""
    client = await get_client(session, principal=principal, client_id=client_id, lock=True)
    require_fresh_step_up(principal)
    key = _new_key(client.key_id)
    now = utcnow()
    if grace_seconds > 0:
        client.previous_key_hash = client.key_hash
        client.previous_key_expires_at = now + dt.timedelta(seconds=grace_seconds)
    else:
        client.previous_key_hash = client.previous_key_expires_at = None
    client.key_hash = keyed_hash(key)
    client.rotated_at = now
    await _audited(session, client, "api_client.rotated", {"grace_seconds": grace_seconds})
    return client, key


async def set_status(
    session: AsyncSession, *, principal: Principal, client_id: uuid.UUID, suspended: bool
) -> ApiClient:
    client = await get_client(session, principal=principal, client_id=client_id, lock=True)
    require_fresh_step_up(principal)
    if (client.status == SUSPENDED) == suspended:
        raise Conflict(
            "The API client is already suspended" if suspended else "The API client is not suspended",
            code="api_client_already_suspended" if suspended else "api_client_not_suspended",
        )
    client.status = SUSPENDED if suspended else ACTIVE
    client.suspended_at = utcnow() if suspended else None
    await _audited(session, client, "api_client.suspended" if suspended else "api_client.restored", {})
    return client


async def update_client(
    session: AsyncSession,
    *,
    principal: Principal,
    client_id: uuid.UUID,
    name: str | None,
    scopes: list[ApiScope] | None,
    ip_allowlist: list[str] | None,
) -> ApiClient:
    client = await get_client(session, principal=principal, client_id=client_id, lock=True)
    require_fresh_step_up(principal)
    changes: dict[str, object] = {}
    if name is not None and name != client.name:
        changes["name"] = {"from": client.name, "to": name}
        client.name = name
    if scopes is not None and _scopes(scopes) != sorted(client.scopes):
        changes["scopes"] = {"from": sorted(client.scopes), "to": _scopes(scopes)}
        client.scopes = _scopes(scopes)
    if ip_allowlist is not None and ip_allowlist != client.ip_allowlist:
        changes["ip_allowlist"] = {"from": client.ip_allowlist, "to": ip_allowlist}
        client.ip_allowlist = ip_allowlist
    if changes:
        await _audited(session, client, "api_client.updated", changes)
    return client


def _scopes(scopes: list[ApiScope]) -> list[str]:
    return sorted({scope.value for scope in scopes})


async def _audited(session: AsyncSession, client: ApiClient, action: str, details: dict[str, object]) -> None:
    """Audit a change in the same transaction, then flush so a failing write surfaces here."""
    audit.record(
        session,
        action=action,
        object_type="api_client",
        object_id=client.id,
        unit_id=client.unit_id,
        details={"key_id": client.key_id, **details},
    )
    await session.flush()
