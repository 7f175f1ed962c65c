"""Quiet hours, written once: a recipient with ``quiet_start``/``quiet_end`` (local times) is quiet
from the start, inclusive, to the end, exclusive; a start after the end wraps midnight. Without
both ends there are no quiet hours.

The rule is one SQL expression. The digest sender (tracking/sender.py) runs it in a query; the
sweep (tracking/sweep.py), a statement written as text, embeds the same expression rendered as
SQL text, so the two cannot disagree (tests/tracking/test_quiet_hours.py checks both at the edges).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, SQLColumnExpression, Time, and_, case, literal_column, or_


def in_quiet_hours(
    start: SQLColumnExpression[Any], end: SQLColumnExpression[Any], local_time: SQLColumnExpression[Any]
) -> ColumnElement[bool]:
    """True when ``local_time`` falls in the quiet hours from ``start`` to ``end``."""
    return and_(
        start.is_not(None),
        end.is_not(None),
        case(
            (start < end, and_(local_time >= start, local_time < end)),
            else_=or_(local_time >= start, local_time < end),
        ),
    )


def in_quiet_hours_sql(start: str, end: str, local_time: str) -> str:
    """The same rule as SQL text, over the columns and the bind placeholder named (for example
    ``"p.quiet_start", "p.quiet_end", ":local_time"``); the names are the caller's constants."""

    def named(name: str) -> ColumnElement[dt.time]:
        return literal_column(name, Time)

    expression = in_quiet_hours(named(start), named(end), named(local_time))
    # Plain SQL (comparisons, AND/OR, CASE): the generic compiler writes what PostgreSQL reads.
    return str(expression.compile())
