"""Seeing and purging a flood of anonymous registrations (issue 12, item 5; docs/delivery.md).

Anonymous registrations are rate limited per network and globally (auth.ratelimit), and each
device row records when (``created_at``) and from which network (``registered_network``) it
came, instead of an audit row per registration. What a flood leaves behind is anonymous devices
that never came back with their credential (``credential_used_at IS NULL``): they never read an
inbox, opened a push or refreshed. Those, from one network in one time window, are what the
purge removes. A real reader caught in it (installed in that window, never opened the app since)
loses nothing stored: their app's next call gets 401 and registers again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, delete, func, literal, select
from sqlalchemy.dialects.postgresql import CIDR
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from core.netaddr import Network
from devices.models import Device

# Rows of one overview: the busiest networks first.
MAX_NETWORKS = 500


@dataclass(frozen=True)
class NetworkRegistrations:
    network: Network | None  # None: devices registered before their network was recorded
    registrations: int
    unproven: int  # never came back with their credential
    first_at: dt.datetime
    last_at: dt.datetime


def _within(network: Network) -> ColumnElement[bool]:
    # ``<<=``: the device's network is the given one or inside it (a /16 covers its /24s).
    return Device.registered_network.op("<<=")(literal(network, CIDR))


def _anonymous_in(since: dt.datetime, until: dt.datetime) -> ColumnElement[bool]:
    return and_(Device.user_id.is_(None), Device.created_at >= since, Device.created_at < until)


async def registrations_by_network(
    session: AsyncSession,
    *,
    since: dt.datetime,
    until: dt.datetime,
    within: Network | None = None,
    limit: int = MAX_NETWORKS,
) -> list[NetworkRegistrations]:
    """Anonymous devices registered in ``[since, until)`` per network, busiest first."""
    unproven = func.count().filter(Device.credential_used_at.is_(None))
    query = (
        select(
            Device.registered_network,
            func.count().label("registrations"),
            unproven.label("unproven"),
            func.min(Device.created_at),
            func.max(Device.created_at),
        )
        .where(_anonymous_in(since, until))
        .group_by(Device.registered_network)
        .order_by(func.count().desc(), Device.registered_network)
        .limit(limit)
    )
    if within is not None:
        query = query.where(_within(within))
    return [
        NetworkRegistrations(
            network=row[0], registrations=row[1], unproven=row[2], first_at=row[3], last_at=row[4]
        )
        for row in (await session.execute(query)).all()
    ]


async def purge_unproven(
    session: AsyncSession, *, network: Network, since: dt.datetime, until: dt.datetime, dry_run: bool
) -> int:
    """Delete (or, ``dry_run``, count) the anonymous devices registered from ``network`` (or a
    network inside it) in ``[since, until)`` that never presented their credential. Their
    deliveries go with them (foreign key cascade). Audited with the count, dry runs too."""
    condition = and_(_anonymous_in(since, until), Device.credential_used_at.is_(None), _within(network))
    if dry_run:
        count = (await session.execute(select(func.count()).where(condition))).scalar_one()
    else:
        gone = delete(Device).where(condition).returning(Device.id).cte("gone")
        count = (await session.execute(select(func.count()).select_from(gone))).scalar_one()
    audit.record(
        session,
        action="device.flood_purged",
        object_type="network",
        object_id=str(network),
        details={
            "since": since.isoformat(),
            "until": until.isoformat(),
            "dry_run": dry_run,
            "devices": int(count),
        },
    )
    return int(count)
