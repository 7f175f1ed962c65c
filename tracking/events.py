"""Events of an intake that notify people: task assigned, deadline changed, report rejected
with its reason (D-15), report approved.

One bulk upsert may assign hundreds of tasks to the same people (an initial import): tasks with
the same event and the same recipients become one summary notification instead of hundreds.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth.principal import Principal
from core.workcalendar import TIMEZONE
from tracking import notify
from tracking.rules import get_rules

_TITLES = {
    "tracking.assigned": ("Nhiệm vụ mới được giao", "Bạn được giao {n} nhiệm vụ mới"),
    "tracking.deadline_changed": ("Thời hạn nhiệm vụ thay đổi", "Thời hạn của {n} nhiệm vụ thay đổi"),
    "tracking.report_rejected": (
        "Báo cáo bị trả lại, cần chỉnh sửa",
        "{n} báo cáo bị trả lại, cần chỉnh sửa",
    ),
    "tracking.report_approved": ("Báo cáo đã được phê duyệt", "{n} báo cáo đã được phê duyệt"),
}
MAX_LISTED = 5


def local_date(instant: dt.datetime) -> str:
    return instant.astimezone(TIMEZONE).strftime("%d/%m/%Y")


def _events_of(row: dict[str, Any], before: Any) -> list[tuple[str, list[uuid.UUID], str]]:
    """(kind, recipients, detail line) for one applied task."""
    responsible: list[uuid.UUID] = row["responsible_user_ids"]
    found: list[tuple[str, list[uuid.UUID], str]] = []
    head = f"{row['code']}: {row['name']}"
    if row["result_status"] != "done":
        if before is None or before.lead_unit_id != row["lead_unit_id"]:
            newly = responsible
        else:
            newly = [u for u in responsible if u not in set(before.responsible_user_ids)]
        if newly:
            found.append(("tracking.assigned", newly, f"{head}. Thời hạn: {local_date(row['deadline'])}."))
        if before is not None and before.deadline != row["deadline"]:
            others = [u for u in responsible if u not in set(newly)]
            if others:
                found.append(
                    (
                        "tracking.deadline_changed",
                        others,
                        f"{head}. Thời hạn mới: {local_date(row['deadline'])} "
                        f"(trước đây {local_date(before.deadline)}).",
                    )
                )
    report = row["report_status"]
    changed = before is None or (before.report_status, before.report_note) != (report, row["report_note"])
    if changed and report == "rejected":
        found.append(("tracking.report_rejected", responsible, f"{head}. Lý do: {row['report_note'] or ''}"))
    elif changed and report == "approved" and (before is None or before.report_status != "approved"):
        found.append(("tracking.report_approved", responsible, f"{head}."))
    return [event for event in found if event[1]]


async def announce_task_changes(
    session: AsyncSession,
    *,
    principal: Principal,
    changes: Sequence[tuple[dict[str, Any], Any]],
) -> int:
    rules = get_rules()
    groups: dict[tuple[str, bool, tuple[uuid.UUID, ...], bool], list[tuple[dict[str, Any], str]]] = (
        defaultdict(list)
    )
    for row, before in changes:
        emergency = rules.is_emergency(row["priority"])
        for kind, recipients, detail in _events_of(row, before):
            key = (kind, bool(row["classified"]), tuple(sorted(recipients)), emergency)
            groups[key].append((row, detail))
    sent = 0
    for (kind, classified, audience, emergency), items in groups.items():
        single, many = _TITLES[kind]
        if len(items) == 1:
            row, detail = items[0]
            title, body, link = single, detail, notify.task_link(row["id"])
            data = {"task_id": str(row["id"]), "task_code": row["code"]}
        else:
            listed = "; ".join(detail for _, detail in items[:MAX_LISTED])
            more = f" và {len(items) - MAX_LISTED} nhiệm vụ khác" if len(items) > MAX_LISTED else ""
            title, body, link, data = many.format(n=len(items)), listed + more, "chuong-tracking://tasks", {}
        message = notify.Message(
            kind=kind,
            title=title,
            body=body,
            recipients=audience,
            classified=classified,
            priority="emergency"
            if emergency
            else ("high" if kind == "tracking.report_rejected" else "normal"),
            data=data,
            deep_link=link,
        )
        await notify.send(session, principal=principal, message=message, rules=rules)
        sent += 1
    return sent
