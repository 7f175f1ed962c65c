"""The reminder and warning policy (D-13, D-14), configured in one place.

Defaults below; a deployment overrides any of them with ``CHUONG_TRACKING_RULES`` (a JSON
object with the same field names), e.g. ``{"deadline_offsets": [5, 2, 0], "due_soon_percent": 20}``.
Rules live in settings rather than a table because they are policy that changes with a
decision and a deploy, and every sweep must read the same rules (no half-applied edit).
See docs/tracking.md.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.config import get_settings

EscalationTarget = Literal["responsible", "unit_leaders", "standing_agency"]


class OverdueStep(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Fires at the opening of the n-th working day after the deadline's date.
    after_working_days: int = Field(ge=1, le=60)
    to: EscalationTarget


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Reminders before the deadline: n days before (0 = the due day), at the opening of that day.
    deadline_offsets: tuple[int, ...] = (7, 3, 1, 0)
    # working_days: "1 day before a Monday deadline" is Friday; before a post-Tết deadline it is
    # the last working day before Tết. calendar_days: the calendar day, and a reminder falling
    # on a day off waits for the next working slot.
    offset_unit: Literal["working_days", "calendar_days"] = "working_days"
    overdue_steps: tuple[OverdueStep, ...] = (
        OverdueStep(after_working_days=1, to="responsible"),
        OverdueStep(after_working_days=2, to="responsible"),
        OverdueStep(after_working_days=3, to="responsible"),
        OverdueStep(after_working_days=4, to="unit_leaders"),
        OverdueStep(after_working_days=5, to="standing_agency"),
    )
    # The standing agency (cơ quan thường trực) that approves reports and gets the last
    # escalation; its task approvers and leaders are notified. None: the lead unit's root unit.
    standing_agency_unit_code: str | None = None
    # D-14: confirm or respond within this many working hours; remind at the fraction, escalate
    # to the unit's leaders at expiry.
    confirm_window_hours: float = Field(default=8, gt=0, le=80)
    confirm_remind_at: float = Field(default=0.5, gt=0, lt=1)
    # KPI report reminders, days before the report's due date (same unit as deadline_offsets).
    report_offsets: tuple[int, ...] = (5, 1, 0)
    # "Due soon" (D-12): within ``due_soon_days`` of the deadline, or, when ``due_soon_percent``
    # is set, in the last that-many percent of the window from assignment to deadline.
    due_soon_days: int = Field(default=7, ge=0, le=365)
    due_soon_percent: int | None = Field(default=None, ge=1, le=99)
    # Task priorities (1 = highest) whose reminders are emergencies: they ring at once, even
    # outside working hours or in quiet hours, and never wait for a digest.
    emergency_priorities: tuple[int, ...] = (1,)
    # Reminders whose time was missed (worker down) are still sent this many working days late.
    catch_up_working_days: int = Field(default=2, ge=1, le=20)
    # Users who chose the daily digest get one push at this local time on working days.
    digest_time: dt.time = dt.time(8, 0)
    # Requests for an update or a correction (D-15, tracking/requests.py): due this many working
    # days after they are asked (unless the agency names a working day); reminded n working days
    # before the due day (0 = the due day) at its opening; escalated after it like a deadline.
    request_working_days: int = Field(default=3, ge=1, le=60)
    request_offsets: tuple[int, ...] = (1, 0)
    request_overdue_steps: tuple[OverdueStep, ...] = (
        OverdueStep(after_working_days=1, to="responsible"),
        OverdueStep(after_working_days=2, to="unit_leaders"),
        OverdueStep(after_working_days=3, to="standing_agency"),
    )
    # Sensitivity of notifications about tasks that are not classified: ``internal`` pushes show
    # only a generic line (the inbox shows the text after sign-in); ``public`` pushes carry the
    # reminder text. Classified tasks are always ``classified`` (no content at all).
    open_sensitivity: Literal["public", "internal"] = "internal"

    @model_validator(mode="after")
    def _sane(self) -> Rules:
        if any(n < 0 or n > 90 for n in (*self.deadline_offsets, *self.report_offsets)):
            raise ValueError("offsets must be between 0 and 90 days")
        if any(n < 0 or n > 60 for n in self.request_offsets):
            raise ValueError("request offsets must be between 0 and 60 working days")
        if any(p < 1 or p > 5 for p in self.emergency_priorities):
            raise ValueError("priorities are 1…5")
        return self

    def is_emergency(self, priority: int) -> bool:
        return priority in self.emergency_priorities


@lru_cache
def get_rules() -> Rules:
    return Rules.model_validate(get_settings().tracking_rules)
