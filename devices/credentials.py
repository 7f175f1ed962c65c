"""Device credentials (``chd_<device id hex>_<secret>``) checked on the read path in one statement.

After a breaking push most requests are a device's unread count and first inbox page. Their
authentication reads only the columns a reader needs, on a pooled connection of its own (no session, no ORM
object or identity map), and takes the route's own columns (the unread count, the read-all
markers) in the *same* statement: one PostgreSQL round trip for the credential and the answer.
It runs on the driver's connection, without SQLAlchemy's session or execution layer
(``_fetch_one``, core/pooled_driver.py).
The route's columns are computed only for a live device whose stored keyed hash equals the
presented credential's (the ``WHERE`` below), so an unknown, retired or forged credential costs
one primary-key probe and reads nobody's inbox.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core import pooled_driver
from core.clock import utcnow
from core.crypto import constant_time_equals, keyed_hash
from core.errors import Unauthorized
from core.logging import get_logger

log = get_logger(__name__)

CREDENTIAL_PREFIX = "chd_"

# The device row is ``d``; a route's columns may name it. $1 the device id, $2 the credential's
# keyed hash; a route's parameters are numbered from $3.
FIRST_ROUTE_PARAMETER = 3
_SELECT = (
    "SELECT d.id, d.app, d.provider, d.token, d.locale, d.created_at, d.topics, d.credential_hash, "
    "d.credential_used_at{columns} FROM devices d "
    "WHERE d.id = $1 AND d.invalidated_at IS NULL AND d.credential_hash = $2"
)
_FIRST_USE = "UPDATE devices SET credential_used_at = $2 WHERE id = $1 AND credential_used_at IS NULL"


@dataclass
class CredentialDevice:
    """What a device principal's readers use of the device (``auth.principal.AuthenticatedDevice``),
    read without an ORM object: routes that change the device load it themselves."""

    id: uuid.UUID
    app: str
    provider: str
    token: str
    locale: str
    created_at: dt.datetime
    topics: list[str] = field(default_factory=list)


def device_id_of(credential: str) -> uuid.UUID:
    """The device id a credential names (not yet proof of anything); 401 if malformed."""
    try:
        device_hex, _ = credential.removeprefix(CREDENTIAL_PREFIX).split("_", 1)
        return uuid.UUID(hex=device_hex)
    except ValueError as exc:
        raise invalid_credential() from exc


def invalid_credential() -> Unauthorized:
    return Unauthorized("Invalid device credential", code="invalid_device_credential")


async def authenticate_on(
    session: AsyncSession,
    credential: str,
    *,
    columns: Sequence[str] = (),
    parameters: Sequence[object] = (),
) -> tuple[CredentialDevice, dict[str, Any]]:
    """The live device holding ``credential`` and its row with the route's ``columns`` (SQL
    over ``d``, parameters from $3), in one statement; 401 ``invalid_device_credential`` for
    anything else. The statement runs on a pooled connection of its own
    (``core.pooled_driver``), so the session checks out no connection unless the route needs one
    (a read-only route's session is an autocommit one; a registration's keeps its transaction for
    what it writes). A credential's first use is recorded (``credential_used_at``, once per
    device: devices/floods.py tells registration floods by it) in a statement of its own, on the
    session."""
    device_id = device_id_of(credential)
    presented = keyed_hash(credential)
    statement = _SELECT.format(columns="".join(f", {column}" for column in columns))
    row = await _fetch_one(session, statement, (device_id, presented, *parameters))
    # The WHERE compared already; compared again in constant time, as every secret here is.
    if row is None or not constant_time_equals(row["credential_hash"], presented):
        raise invalid_credential()
    if row["credential_used_at"] is None:
        await (await session.connection()).exec_driver_sql(_FIRST_USE, (device_id, utcnow()))
    device = CredentialDevice(
        id=device_id,
        app=row["app"],
        provider=row["provider"],
        token=row["token"],
        locale=row["locale"],
        created_at=row["created_at"],
        topics=list(row["topics"] or []),
    )
    return device, row


async def _fetch_one(
    session: AsyncSession, statement: str, parameters: tuple[object, ...]
) -> dict[str, Any] | None:
    """One row, straight from the driver (asyncpg's ``fetchrow`` on a pooled connection, no
    session): SQLAlchemy's session, execution and result layers cost this request path more CPU
    than the rest of its database work. On any driver error the read-only statement runs again
    through the session, which classifies the failure as everywhere else (a dead connection is
    invalidated and the request answered 503; a bounded wait is a 503) — running it twice
    changes nothing."""
    try:
        return await pooled_driver.fetch_row(statement, parameters)
    except pooled_driver.DriverFailed as exc:  # whatever it was, SQLAlchemy's run below classifies it
        log.debug("device_read_driver_failed", error=str(exc))
    connection = await session.connection()
    found = (await connection.exec_driver_sql(statement, parameters)).first()
    return dict(found._mapping) if found is not None else None
