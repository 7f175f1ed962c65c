"""Fields of responsibility (D-16, docs/tracking.md): the catalogue (system admins), leaders'
fields (admins of the leader's unit) and a task's field (the connected system that sends it);
and the KPIs a person may read, by the same scope as tasks (tracking/scope.py)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import Authenticated, SessionDep, SystemAdmin, require
from api.routers.tracking import Writer
from auth.principal import Principal
from auth.roles import Permission
from core.db import utcnow
from core.schemas import Page
from tracking import calendar as tracking_calendar
from tracking import fields, kpis
from tracking import service as tracking
from tracking.field_schemas import (
    FieldCreate,
    FieldOut,
    FieldUpdate,
    KpiOut,
    LeaderFieldsIn,
    LeaderFieldsOut,
    TaskFieldIn,
)
from tracking.rules import get_rules
from tracking.schemas import TaskOut

router = APIRouter(tags=["tracking"])


# System admins keep the deployment-wide catalogue of fields (one for every unit).
Catalogue = Depends(SystemAdmin(Permission.UNITS_WRITE, message="Only system admins edit fields"))


@router.get("/fields", response_model=list[FieldOut])
async def list_fields(session: SessionDep, principal: Principal = Depends(Authenticated())) -> list[FieldOut]:
    """Every field of responsibility, by code (reference data: any signed-in account)."""
    return [FieldOut.model_validate(f) for f in await fields.list_fields(session)]


@router.post("/fields", response_model=FieldOut, status_code=201)
async def create_field(body: FieldCreate, session: SessionDep, principal: Principal = Catalogue) -> FieldOut:
    """A new field; 409 ``field_code_taken`` when the code exists."""
    field = await fields.create_field(session, code=body.code, name_vi=body.name_vi, name_en=body.name_en)
    return FieldOut.model_validate(field)


@router.patch("/fields/{field_id}", response_model=FieldOut)
async def rename_field(
    field_id: uuid.UUID, body: FieldUpdate, session: SessionDep, principal: Principal = Catalogue
) -> FieldOut:
    field = await fields.rename_field(session, field_id=field_id, name_vi=body.name_vi, name_en=body.name_en)
    return FieldOut.model_validate(field)


@router.get("/leaders/{user_id}/fields", response_model=LeaderFieldsOut)
async def get_leader_fields(
    user_id: uuid.UUID, session: SessionDep, principal: Principal = require(Permission.USERS_READ)
) -> LeaderFieldsOut:
    found = await fields.get_leader_fields(session, principal=principal, user_id=user_id)
    return LeaderFieldsOut(user_id=user_id, fields=[FieldOut.model_validate(f) for f in found])


@router.put("/leaders/{user_id}/fields", response_model=LeaderFieldsOut)
async def put_leader_fields(
    user_id: uuid.UUID,
    body: LeaderFieldsIn,
    session: SessionDep,
    principal: Principal = require(Permission.USERS_WRITE),
) -> LeaderFieldsOut:
    """Replace the leader's fields (by code). 404 for an account outside your subtree, 422
    ``not_a_leader`` for an account that is not a leader, 422 ``unknown_fields``."""
    found = await fields.set_leader_fields(session, principal=principal, user_id=user_id, codes=body.fields)
    return LeaderFieldsOut(user_id=user_id, fields=[FieldOut.model_validate(f) for f in found])


@router.put("/tasks/{task_id}/field", response_model=TaskOut)
async def put_task_field(
    task_id: uuid.UUID, body: TaskFieldIn, session: SessionDep, principal: Principal = Writer
) -> TaskOut:
    """Set or clear a task's field: the connected system whose units the task belongs to."""
    task = await fields.set_task_field(session, principal=principal, task_id=task_id, code=body.field)
    calendar = await tracking_calendar.load_calendar(session)
    return tracking.task_out(task, now=utcnow(), rules=get_rules(), calendar=calendar)


@router.get("/kpis", response_model=Page[KpiOut])
async def list_kpis(
    session: SessionDep,
    principal: Principal = require(Permission.TASKS_READ),
    code: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    period: Annotated[str | None, Query(min_length=1, max_length=16)] = None,
    unit_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> Page[KpiOut]:
    """The KPI periods of the units you reach (an inspector: the overseen units) and those you
    report, newest ``report_due`` first; keyset pages (``cursor`` ← ``next_cursor``)."""
    filters = kpis.KpiFilters(code=code, period=period, unit_id=unit_id, limit=limit, cursor=cursor)
    found, next_cursor = await kpis.list_kpis(session, principal=principal, filters=filters)
    return Page[KpiOut](items=[KpiOut.model_validate(k) for k in found], next_cursor=next_cursor)
