"""Which devices a notification targets, read page by page in device-id order (keyset), so a
fan-out to millions never holds more than one page in memory; and which accounts it names."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Select, and_, false, or_, select
from sqlalchemy.sql.elements import ColumnElement

from auth.models import Unit, User
from devices.models import Device
from devices.schemas import version_code
from devices.service import live_since
from notifications.models import Delivery


def audience_filter(audience: dict[str, Any], *, sender_unit_path: str | None) -> ColumnElement[bool]:
    if audience.get("all"):
        return and_(True)
    clauses: list[ColumnElement[bool]] = []
    active_users = select(User.id).where(User.is_active.is_(True))
    if audience.get("users"):
        ids = [uuid.UUID(u) for u in audience["users"]]
        clauses.append(Device.user_id.in_(active_users.where(User.id.in_(ids))))
    if audience.get("units"):
        # A unit includes its sub-units (a province's communes).
        targets = (
            select(Unit.path)
            .where(Unit.id.in_([uuid.UUID(u) for u in audience["units"]]))
            .subquery("targets")
        )
        unit_ids = select(Unit.id).join(targets, Unit.path.startswith(targets.c.path))
        clauses.append(Device.user_id.in_(active_users.where(User.unit_id.in_(unit_ids))))
    if audience.get("roles"):
        role_users = active_users.where(User.role.in_(audience["roles"]))
        if sender_unit_path is not None:
            role_users = role_users.join(Unit, Unit.id == User.unit_id).where(
                Unit.path.startswith(sender_unit_path)
            )
        clauses.append(Device.user_id.in_(role_users))
    if audience.get("devices"):
        clauses.append(Device.id.in_([uuid.UUID(d) for d in audience["devices"]]))
    if audience.get("topics"):
        clauses.append(Device.topics.overlap(list(audience["topics"])))
    if audience.get("recipients_of"):
        # A recall's retract push goes to exactly the devices the original reached.
        received = select(Delivery.device_id).where(
            Delivery.notification_id == uuid.UUID(audience["recipients_of"]), Delivery.status == "sent"
        )
        clauses.append(Device.id.in_(received))
    return or_(*clauses) if clauses else false()


def account_filter(audience: dict[str, Any], *, sender_unit_path: str | None) -> ColumnElement[bool]:
    """The accounts whose devices ``audience_filter`` targets by name, unit or role (the caller
    adds ``User.is_active``): whose inboxes a targeted notification is written to (inbox/fanout.py)
    and whom the four-eyes rule counts (notifications/policy.py)."""
    clauses: list[ColumnElement[bool]] = []
    if audience.get("users"):
        clauses.append(User.id.in_([uuid.UUID(u) for u in audience["users"]]))
    if audience.get("units"):
        targets = (
            select(Unit.path)
            .where(Unit.id.in_([uuid.UUID(u) for u in audience["units"]]))
            .subquery("targets")
        )
        clauses.append(User.unit_id.in_(select(Unit.id).join(targets, Unit.path.startswith(targets.c.path))))
    if audience.get("roles"):
        role_match: ColumnElement[bool] = User.role.in_(audience["roles"])
        if sender_unit_path is not None:
            in_subtree = select(Unit.id).where(Unit.path.startswith(sender_unit_path))
            role_match = role_match & User.unit_id.in_(in_subtree)
        clauses.append(role_match)
    return or_(*clauses) if clauses else false()


def restriction_filter(audience: dict[str, Any]) -> ColumnElement[bool]:
    """Narrowing filters ANDed to whatever the audience selects (breaking news, D-01): reader
    language, region and minimum app version. Devices with an unknown version or region are left
    out when the filter is set: they cannot be shown to qualify."""
    clauses: list[ColumnElement[bool]] = []
    if audience.get("languages"):
        clauses.append(Device.locale.in_(list(audience["languages"])))
    if audience.get("provinces"):
        clauses.append(Device.province.in_(list(audience["provinces"])))
    if audience.get("min_app_version"):
        code = version_code(audience["min_app_version"])
        clauses.append(Device.app_version_code >= code if code is not None else false())
    return and_(*clauses) if clauses else and_(True)


def page_query(
    *,
    app: str,
    audience: dict[str, Any],
    sender_unit_path: str | None,
    after: uuid.UUID | None,
    limit: int,
    now: dt.datetime,
) -> Select[uuid.UUID, str, str]:
    query: Select[uuid.UUID, str, str] = (
        select(Device.id, Device.provider, Device.locale)
        .where(
            Device.app == app,
            Device.invalidated_at.is_(None),
            Device.last_seen_at >= live_since(now),
            audience_filter(audience, sender_unit_path=sender_unit_path),
            restriction_filter(audience),
        )
        .order_by(Device.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(Device.id > after)
    return query
