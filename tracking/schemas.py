"""Request and response bodies of the tracking app."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from core.schemas import RequestModel, ResponseModel
from core.types import BoundedDate, BoundedDatetime, NonNegativeInt64

Code = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$")
]
UnitCode = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Username = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
LongText = Annotated[str, StringConstraints(max_length=20_000)]
ResultStatus = Literal["not_started", "in_progress", "done"]
DeadlineStatus = Literal["on_time", "due_soon", "overdue", "done"]
RefusalCode = Literal["wrong_assignment", "outside_authority"]
# What the unit tells the assigning and standing agencies: a few sentences, not a report.
REFUSAL_REASON_MAX = 2000
# The BIGINT column's range (no 500 on a huge number).
Version = NonNegativeInt64
# Year 1 or 9999 would overflow when moved between time zones; no task lives there (core/types.py).
Day = BoundedDate
Instant = BoundedDatetime


class Attachment(RequestModel):
    """A reference to an evidence file kept by the tracking system (never the file itself)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    ref: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    size: Annotated[int, Field(ge=0, le=2**40)] | None = None
    media_type: Annotated[str, StringConstraints(max_length=255)] | None = None


class ReportState(RequestModel):
    """The unit's latest progress report and the standing agency's decision (D-15)."""

    status: Literal["submitted", "approved", "rejected"]
    reason: LongText | None = None

    @model_validator(mode="after")
    def _reason_for_rejection(self) -> ReportState:
        if self.status == "rejected" and not (self.reason and self.reason.strip()):
            raise ValueError("a rejected report needs a reason")
        return self


class TaskUpsert(RequestModel):
    code: Code
    version: Version
    name: ShortText
    group_code: Code | None = None
    group_name: ShortText | None = None
    lead_unit: UnitCode
    cooperating_units: Annotated[list[UnitCode], Field(max_length=200)] = Field(default_factory=list)
    responsible_users: Annotated[list[Username], Field(max_length=200)] = Field(default_factory=list)
    assigning_document: ShortText | None = None
    expected_output: LongText | None = None
    assigned_at: Instant | None = None
    # A date means the end of that working day (17:00 Asia/Ho_Chi_Minh).
    deadline: Day | Instant
    priority: Annotated[int, Field(ge=1, le=5)] = 3
    result_status: ResultStatus = "not_started"
    completed_at: Instant | None = None
    confirmed_at: Instant | None = None
    classified: bool = False
    description: LongText | None = None
    difficulties: LongText | None = None
    proposals: LongText | None = None
    attachments: Annotated[list[Attachment], Field(max_length=50)] = Field(default_factory=list)
    report: ReportState | None = None
    # The field of responsibility's code (D-16, tracking/fields.py); null clears it, and a record
    # without the key keeps the stored one (senders that know no fields do not wipe them).
    field: Code | None = None

    @model_validator(mode="after")
    def _classified_carries_status_only(self) -> TaskUpsert:
        # D-17: for classified tasks only the status is entered.
        if self.classified:
            present = [
                name
                for name in ("description", "difficulties", "proposals")
                if getattr(self, name) is not None
            ]
            if self.attachments:
                present.append("attachments")
            if self.report is not None and self.report.reason:
                present.append("report.reason")
            if present:
                raise ValueError("classified tasks carry only their status; remove: " + ", ".join(present))
        return self


class TaskBatch(RequestModel):
    tasks: Annotated[list[TaskUpsert], Field(min_length=1)]


class KpiUpsert(RequestModel):
    code: Annotated[Code, StringConstraints(max_length=32)]  # tracking_kpis.code is VARCHAR(32)
    period: Annotated[str, StringConstraints(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9_.\-]+$")]
    period_kind: Literal["month", "quarter", "year", "ad_hoc"]
    version: Version
    name: ShortText
    unit: UnitCode
    responsible_users: Annotated[list[Username], Field(max_length=200)] = Field(default_factory=list)
    target: Annotated[Decimal, Field(max_digits=30, decimal_places=6, allow_inf_nan=False)] | None = None
    value: Annotated[Decimal, Field(max_digits=30, decimal_places=6, allow_inf_nan=False)] | None = None
    cumulative_value: (
        Annotated[Decimal, Field(max_digits=30, decimal_places=6, allow_inf_nan=False)] | None
    ) = None
    report_due: Day
    reported_at: Instant | None = None


class KpiBatch(RequestModel):
    kpis: Annotated[list[KpiUpsert], Field(min_length=1)]


class UpsertResult(ResponseModel):
    created: int
    updated: int
    # Records whose stored version is the same or newer: left untouched.
    ignored: list[str]
    notifications: int


class TaskRefusal(RequestModel):
    """The unit's answer "not ours" (D-14): wrongly assigned, or outside its authority, and why.
    NUL and lone surrogates (which PostgreSQL cannot store) are refused with 422 by RequestModel."""

    code: RefusalCode
    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=REFUSAL_REASON_MAX)
    ]


RequestKind = Literal["update", "correction"]
# A request and its answer: a few paragraphs, not the report itself (that is the tracking system's).
REQUEST_TEXT_MAX = 4000
RequestText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=REQUEST_TEXT_MAX)
]


class UpdateRequestIn(RequestModel):
    """The standing agency asks the unit in charge for an update or a correction (D-15). The due
    date is ``working_days`` working days from today (the rules' ``request_working_days`` when
    neither is given), or a named ``due_date`` that must be a working day, today or later."""

    kind: RequestKind
    message: RequestText
    due_date: Day | None = None
    working_days: Annotated[int, Field(ge=1, le=60)] | None = None

    @model_validator(mode="after")
    def _one_due(self) -> UpdateRequestIn:
        if self.due_date is not None and self.working_days is not None:
            raise ValueError("give due_date or working_days, not both")
        return self


class UpdateAnswerIn(RequestModel):
    """The unit's answer, with the progress fields it updated if it likes. Classified tasks
    (D-17) take the status only: ``description``, ``difficulties`` and ``proposals`` are refused."""

    answer: RequestText
    result_status: ResultStatus | None = None
    description: LongText | None = None
    difficulties: LongText | None = None
    proposals: LongText | None = None


class UpdateRequestOut(ResponseModel):
    id: uuid.UUID
    task_id: uuid.UUID
    kind: RequestKind
    origin: Literal["agency", "report_rejected"]
    message: str
    requested_by: uuid.UUID | None
    requested_at: dt.datetime
    due_date: dt.date
    due_at: dt.datetime
    status: Literal["open", "answered", "closed"]
    answered_at: dt.datetime | None
    answered_by: uuid.UUID | None
    answer: str | None
    answer_result_status: ResultStatus | None
    answer_description: str | None
    answer_difficulties: str | None
    answer_proposals: str | None
    closed_at: dt.datetime | None


class TaskOut(ResponseModel):
    id: uuid.UUID
    code: str
    name: str
    group_code: str | None
    group_name: str | None
    lead_unit_id: uuid.UUID
    cooperating_unit_ids: list[uuid.UUID]
    responsible_user_ids: list[uuid.UUID]
    assigned_at: dt.datetime | None
    deadline: dt.datetime
    priority: int
    result_status: str
    completed_at: dt.datetime | None
    classified: bool
    description: str | None
    difficulties: str | None
    proposals: str | None
    report_status: str | None
    received_at: dt.datetime
    confirmed_at: dt.datetime | None
    refused_at: dt.datetime | None
    refused_by: uuid.UUID | None
    refusal_reason_code: RefusalCode | None
    refusal_reason: str | None
    field_id: uuid.UUID | None = None
    confirm_by: dt.datetime | None
    deadline_status: DeadlineStatus
    colour: str
    version: int


class StatusCount(ResponseModel):
    unit_id: uuid.UUID
    deadline_status: DeadlineStatus
    count: int


class PreferenceIn(RequestModel):
    """Quiet hours in local time (Asia/Ho_Chi_Minh); ``22:00``–``06:30`` wraps midnight."""

    quiet_start: dt.time | None = None
    quiet_end: dt.time | None = None
    daily_digest: bool = False

    @model_validator(mode="after")
    def _both_or_neither(self) -> PreferenceIn:
        if (self.quiet_start is None) != (self.quiet_end is None):
            raise ValueError("give both quiet_start and quiet_end, or neither")
        if self.quiet_start is not None and self.quiet_start == self.quiet_end:
            raise ValueError("quiet hours must not be empty")
        for value in (self.quiet_start, self.quiet_end):
            if value is not None and value.tzinfo is not None:
                raise ValueError("quiet hours are local times without an offset")
        return self


class PreferenceOut(ResponseModel):
    quiet_start: dt.time | None
    quiet_end: dt.time | None
    daily_digest: bool


class CalendarDayIn(RequestModel):
    day: Day
    kind: Literal["off", "work"]
    note: Annotated[str, StringConstraints(max_length=255)] | None = None


class CalendarDayOut(ResponseModel):
    day: dt.date
    kind: str
    note: str | None
