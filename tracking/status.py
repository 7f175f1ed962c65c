"""Deadline status and colour code (D-12): on time (đúng hạn), due soon (sắp đến hạn), overdue
(quá hạn); done tasks are done. The Python function (one task) and the SQL expression (counts
over many) implement the same rule and are tested against each other."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ColumnElement, and_, case, func, literal

from tracking.models import Task
from tracking.rules import Rules

COLOURS = {"on_time": "#2E7D32", "due_soon": "#F9A825", "overdue": "#C62828", "done": "#1565C0"}
LABELS_VI = {"on_time": "Đúng hạn", "due_soon": "Sắp đến hạn", "overdue": "Quá hạn", "done": "Đã hoàn thành"}


def deadline_status(
    *,
    result_status: str,
    deadline: dt.datetime,
    window_start: dt.datetime,
    now: dt.datetime,
    rules: Rules,
) -> str:
    if result_status == "done":
        return "done"
    if now > deadline:
        return "overdue"
    left = deadline - now
    if rules.due_soon_percent is not None:
        window = max(deadline - window_start, dt.timedelta(0))
        soon = left <= window * rules.due_soon_percent / 100
    else:
        soon = left <= dt.timedelta(days=rules.due_soon_days)
    return "due_soon" if soon else "on_time"


def status_of(task: Task, *, now: dt.datetime, rules: Rules) -> str:
    return deadline_status(
        result_status=task.result_status,
        deadline=task.deadline,
        window_start=task.assigned_at or task.received_at,
        now=now,
        rules=rules,
    )


def status_sql(*, now: dt.datetime, rules: Rules) -> ColumnElement[str]:
    left = Task.deadline - literal(now)
    if rules.due_soon_percent is not None:
        window = func.greatest(
            Task.deadline - func.coalesce(Task.assigned_at, Task.received_at), literal(dt.timedelta(0))
        )
        soon: ColumnElement[bool] = left <= window * (rules.due_soon_percent / 100)
    else:
        soon = left <= literal(dt.timedelta(days=rules.due_soon_days))
    return case(
        (Task.result_status == "done", literal("done")),
        (Task.deadline < literal(now), literal("overdue")),
        (and_(soon), literal("due_soon")),
        else_=literal("on_time"),
    )
