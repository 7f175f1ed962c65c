"""Events of an intake that notify people: task assigned, deadline changed, report rejected
with its reason (D-15), report approved.

One bulk upsert may assign hundreds of tasks to the same people (an initial import): tasks with
the same event and the same recipients become one summary notification instead of hundreds.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth.principal import Principal
from core.workcalendar import TIMEZONE
from tracking import notify, texts
from tracking.rules import get_rules

# Each event kind has three texts in the catalogue (core/locales): ``<kind>.title`` for one task,
# ``<kind>.summary`` for several, ``<kind>.detail`` for the line of one task.
MAX_LISTED = 5


def local_date(instant: dt.datetime) -> str:
    return instant.astimezone(TIMEZONE).strftime("%d/%m/%Y")


@dataclass(frozen=True)
class Correction:
    """The correction request a rejected report opened (tracking/requests.py): the rejection's
    notification is that request's, so it names its due date and reaches the unit in charge."""

    request_id: uuid.UUID
    due: dt.date
    recipients: list[uuid.UUID]


def report_rejected_now(row: dict[str, Any], before: Any) -> bool:
    """The report is rejected, newly or with a new reason (D-15)."""
    report = row["report_status"]
    changed = before is None or (before.report_status, before.report_note) != (report, row["report_note"])
    return changed and report == "rejected"


def _events_of(
    row: dict[str, Any], before: Any, correction: Correction | None = None
) -> list[tuple[str, list[uuid.UUID], str]]:
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
            detail = texts.render("tracking.assigned.detail", head=head, deadline=local_date(row["deadline"]))
            found.append(("tracking.assigned", newly, detail))
        if before is not None and before.deadline != row["deadline"]:
            others = [u for u in responsible if u not in set(newly)]
            if others:
                detail = texts.render(
                    "tracking.deadline_changed.detail",
                    head=head,
                    deadline=local_date(row["deadline"]),
                    previous=local_date(before.deadline),
                )
                found.append(("tracking.deadline_changed", others, detail))
    report = row["report_status"]
    changed = before is None or (before.report_status, before.report_note) != (report, row["report_note"])
    if report_rejected_now(row, before):
        detail = texts.render("tracking.report_rejected.detail", head=head, reason=row["report_note"] or "")
        recipients = responsible
        if correction is not None:
            due = correction.due.strftime("%d/%m/%Y")
            detail = texts.render(
                "tracking.report_rejected.detail_due", head=head, reason=row["report_note"] or "", due=due
            )
            recipients = correction.recipients
        found.append(("tracking.report_rejected", recipients, detail))
    elif changed and report == "approved" and (before is None or before.report_status != "approved"):
        detail = texts.render("tracking.report_approved.detail", head=head)
        found.append(("tracking.report_approved", responsible, detail))
    return [event for event in found if event[1]]


def summary(kind: str, details: Sequence[str]) -> tuple[str, str]:
    """Title and body of the one notification for several tasks with the same event."""
    body = "; ".join(details[:MAX_LISTED])
    if len(details) > MAX_LISTED:
        body = texts.render("tracking.summary.more", listed=body, more=len(details) - MAX_LISTED)
    return texts.render(f"{kind}.summary", n=len(details)), body


async def announce_task_changes(
    session: AsyncSession,
    *,
    principal: Principal,
    changes: Sequence[tuple[dict[str, Any], Any]],
    corrections: Mapping[uuid.UUID, Correction] | None = None,
) -> int:
    rules = get_rules()
    corrections = corrections or {}
    groups: dict[tuple[str, bool, tuple[uuid.UUID, ...], bool], list[tuple[dict[str, Any], str]]] = (
        defaultdict(list)
    )
    for row, before in changes:
        emergency = rules.is_emergency(row["priority"])
        for kind, recipients, detail in _events_of(row, before, corrections.get(row["id"])):
            key = (kind, bool(row["classified"]), tuple(sorted(recipients)), emergency)
            groups[key].append((row, detail))
    sent = 0
    for (kind, classified, audience, emergency), items in groups.items():
        if len(items) == 1:
            row, detail = items[0]
            title, body, link = texts.render(f"{kind}.title"), detail, notify.task_link(row["id"])
            data = {"task_id": str(row["id"]), "task_code": row["code"]}
            if kind == "tracking.report_rejected" and row["id"] in corrections:
                request_id = corrections[row["id"]].request_id
                data |= {"request_id": str(request_id), "request_kind": "correction"}
                link = f"{link}/requests/{request_id}"
        else:
            title, body = summary(kind, [detail for _, detail in items])
            link, data = "chuong-tracking://tasks", {}
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
