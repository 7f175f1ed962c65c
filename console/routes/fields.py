"""Fields of responsibility (D-16) in the console: the catalogue, with the leaders in charge of
each field, and the form that puts a leader in charge of fields (on the account's page). The
same services and permissions as ``api.routers.tracking_fields``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from api.deps import Require, SessionDep, SystemAdmin
from auth.principal import Principal
from auth.roles import Permission
from console.forms import invalid, see_other
from console.security import verify_csrf
from console.templating import render
from tracking import fields
from tracking.field_schemas import MAX_FIELDS_PER_LEADER, FieldCreate, LeaderFieldsIn

router = APIRouter(prefix="/admin", dependencies=[Depends(verify_csrf)], include_in_schema=False)

Reader = Depends(Require(Permission.USERS_READ))
Writer = Depends(Require(Permission.USERS_WRITE))
Catalogue = Depends(SystemAdmin(Permission.UNITS_WRITE, message="Only system admins edit fields"))
Text = Annotated[str, Form(max_length=255)]


@router.get("/fields")
async def fields_page(
    request: Request, session: SessionDep, done: str = "", principal: Principal = Reader
) -> Response:
    catalogue = await fields.list_fields(session)
    leaders = await fields.leaders_by_field(session, principal=principal)
    context = {"fields": catalogue, "leaders": leaders, "done": done, "can_edit": principal.sees_all_units}
    return render(request, "admin/fields.html", context, principal=principal)


@router.post("/fields")
async def create_field(
    session: SessionDep,
    code: Annotated[str, Form(max_length=64)],
    name_vi: Text,
    name_en: Text,
    principal: Principal = Catalogue,
) -> Response:
    try:
        body = FieldCreate(code=code, name_vi=name_vi, name_en=name_en)
    except ValidationError as exc:
        raise invalid(exc) from exc
    await fields.create_field(session, code=body.code, name_vi=body.name_vi, name_en=body.name_en)
    return see_other("/admin/fields?done=field_created")


@router.post("/users/{user_id}/fields")
async def put_leader_fields(
    user_id: uuid.UUID,
    session: SessionDep,
    field: Annotated[list[str], Form(max_length=MAX_FIELDS_PER_LEADER)] = [],  # noqa: B006 (FastAPI form list)
    principal: Principal = Writer,
) -> Response:
    """The checked fields replace the leader's (none checked: none)."""
    try:
        body = LeaderFieldsIn(fields=field)
    except ValidationError as exc:
        raise invalid(exc) from exc
    await fields.set_leader_fields(session, principal=principal, user_id=user_id, codes=body.fields)
    return see_other(f"/admin/users/{user_id}?done=fields")
