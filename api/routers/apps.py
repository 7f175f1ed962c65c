"""The apps devices register for and notifications go to (issue 19 item 6): list, create,
update, disable. System admins only (``apps:manage``); every change needs a fresh step-up, since
it redirects an app's pushes (its FCM project, its APNs topic) or cuts its devices off."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from api.deps import SessionDep, require
from auth.principal import Principal
from auth.roles import Permission
from devices import apps
from devices.app_schemas import AppCode, AppCreate, AppOut, AppUpdate

router = APIRouter(tags=["apps"])

Manage = require(Permission.APPS_MANAGE, step_up=True)
Read = require(Permission.APPS_MANAGE)
CodeInPath = Annotated[AppCode, Path(description="the app's code")]


@router.get("", response_model=list[AppOut])
async def list_apps(session: SessionDep, principal: Principal = Read) -> list[AppOut]:
    """Every app, disabled ones included, by code."""
    return [AppOut.model_validate(app) for app in await apps.list_all(session)]


@router.post("", response_model=AppOut, status_code=status.HTTP_201_CREATED)
async def add_app(body: AppCreate, session: SessionDep, principal: Principal = Manage) -> AppOut:
    """A new app: its devices may register and its notifications go out at once (in other
    processes within a few seconds, see docs/operations.md). 409 ``app_exists``."""
    return AppOut.model_validate(await apps.create(session, body=body))


@router.patch("/{code}", response_model=AppOut)
async def update_app(
    code: CodeInPath, body: AppUpdate, session: SessionDep, principal: Principal = Manage
) -> AppOut:
    """Change what the body sets; ``enabled: false`` disables the app (no new registrations or
    notifications; its devices, inboxes and pushes under way are kept). Apps are never deleted:
    devices and notifications name them."""
    return AppOut.model_validate(await apps.update(session, code=code, body=body))
