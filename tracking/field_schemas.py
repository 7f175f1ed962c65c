"""Request and response bodies of the fields of responsibility (D-16, tracking/fields.py) and of
the KPI reads (tracking/kpis.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Annotated

from pydantic import Field, StringConstraints

from core.schemas import RequestModel, ResponseModel
from tracking.schemas import Code

FieldName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
MAX_FIELDS_PER_LEADER = 200


class FieldCreate(RequestModel):
    code: Code
    name_vi: FieldName
    name_en: FieldName


class FieldUpdate(RequestModel):
    name_vi: FieldName
    name_en: FieldName


class FieldOut(ResponseModel):
    id: uuid.UUID
    code: str
    name_vi: str
    name_en: str


class LeaderFieldsIn(RequestModel):
    """The whole set of a leader's fields, by code (replaces the stored set)."""

    fields: Annotated[list[Code], Field(max_length=MAX_FIELDS_PER_LEADER)]


class LeaderFieldsOut(ResponseModel):
    user_id: uuid.UUID
    fields: list[FieldOut]


class TaskFieldIn(RequestModel):
    """A task's field, by code; null clears it."""

    field: Code | None


class KpiOut(ResponseModel):
    """One KPI period as the tracking system last sent it (D-11)."""

    id: uuid.UUID
    code: str
    period: str
    period_kind: str
    name: str
    unit_id: uuid.UUID
    responsible_user_ids: list[uuid.UUID]
    target: Decimal | None
    value: Decimal | None
    cumulative_value: Decimal | None
    report_due: dt.date
    reported_at: dt.datetime | None
