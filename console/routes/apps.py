"""Apps (issue 19 item 9): the list, a new app, and an app's settings, for system admins.

The forms build the API's request models (devices/app_schemas.py) and call the same service, so
a value the API refuses is refused here too; every change needs a step-up, as in the API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from api.deps import Require, SessionDep
from auth.principal import Principal
from auth.roles import Permission
from console.forms import invalid, see_other, step_up
from console.security import verify_csrf
from console.templating import render
from core.errors import NotFound
from devices import apps
from devices.app_schemas import ALL_PLATFORMS, AppCode, AppCreate, AppUpdate
from devices.locales import SUPPORTED_LANGUAGES

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)

AppAdmin = Depends(Require(Permission.APPS_MANAGE))
Code = Annotated[str, Form(max_length=32)]
PLATFORMS = ALL_PLATFORMS


@router.get("/admin/apps")
async def apps_page(
    request: Request, session: SessionDep, done: str = "", principal: Principal = AppAdmin
) -> Response:
    context = {
        "apps": await apps.list_all(session),
        "platforms": PLATFORMS,
        "languages": SUPPORTED_LANGUAGES,
        "done": done,
    }
    return render(request, "admin/apps.html", context, principal=principal)


@router.post("/admin/apps")
async def add_app(
    request: Request,
    session: SessionDep,
    code: Annotated[str, Form(max_length=64)],
    name: Annotated[str, Form(max_length=256)],
    platforms: Annotated[list[str], Form(max_length=4)],
    languages: Annotated[list[str], Form(max_length=8)],
    fcm_project_id: Annotated[str, Form(max_length=64)] = "",
    apns_topic: Annotated[str, Form(max_length=256)] = "",
    anonymous_devices: Annotated[str, Form(max_length=8)] = "",
    totp_code: Code = "",
    principal: Principal = AppAdmin,
) -> Response:
    try:
        body = AppCreate.model_validate(
            {
                "code": code.strip(),
                "name": name,
                "platforms": platforms,
                "languages": languages,
                "fcm_project_id": fcm_project_id.strip() or None,
                "apns_topic": apns_topic.strip() or None,
                "anonymous_devices": anonymous_devices == "on",
            }
        )
    except ValidationError as exc:
        raise invalid(exc) from None
    await step_up(request, session, principal, totp_code)
    await apps.create(session, body=body)
    return see_other(f"/admin/apps/{body.code}?done=created")


@router.get("/admin/apps/{app_code}")
async def app_page(
    request: Request, app_code: AppCode, session: SessionDep, done: str = "", principal: Principal = AppAdmin
) -> Response:
    app = next((a for a in await apps.list_all(session) if a.code == app_code), None)
    if app is None:
        raise NotFound("App not found", code="app_not_found")
    context = {"app": app, "platforms": PLATFORMS, "languages": SUPPORTED_LANGUAGES, "done": done}
    return render(request, "admin/app.html", context, principal=principal)


@router.post("/admin/apps/{app_code}")
async def update_app(
    request: Request,
    app_code: AppCode,
    session: SessionDep,
    name: Annotated[str, Form(max_length=256)],
    platforms: Annotated[list[str], Form(max_length=4)],
    languages: Annotated[list[str], Form(max_length=8)],
    fcm_project_id: Annotated[str, Form(max_length=64)] = "",
    apns_topic: Annotated[str, Form(max_length=256)] = "",
    anonymous_devices: Annotated[str, Form(max_length=8)] = "",
    enabled: Annotated[str, Form(max_length=8)] = "",
    totp_code: Code = "",
    principal: Principal = AppAdmin,
) -> Response:
    """The whole form is the app's new settings: an empty project or topic means the default."""
    try:
        body = AppUpdate.model_validate(
            {
                "name": name,
                "enabled": enabled == "on",
                "platforms": platforms,
                "languages": languages,
                "fcm_project_id": fcm_project_id.strip() or None,
                "apns_topic": apns_topic.strip() or None,
                "anonymous_devices": anonymous_devices == "on",
            }
        )
    except ValidationError as exc:
        raise invalid(exc) from None
    await step_up(request, session, principal, totp_code)
    await apps.update(session, code=app_code, body=body)
    return see_other(f"/admin/apps/{app_code}?done=saved")
