"""Device statistics: per app, platform and language, with the invalid-token rate."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api.deps import Require, SessionDep
from auth.principal import Principal
from auth.roles import Permission
from console.security import verify_csrf
from console.templating import render
from devices.stats import device_counts, totals_by

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)


@router.get("/admin/devices")
async def devices_page(
    request: Request,
    session: SessionDep,
    principal: Principal = Depends(Require(Permission.NOTIFICATIONS_READ)),
) -> Response:
    counts = await device_counts(session)
    context = {
        "counts": counts,
        "by_app": totals_by(counts, "app"),
        "by_platform": totals_by(counts, "platform"),
        "by_locale": totals_by(counts, "locale"),
        "live": sum(c.live for c in counts),
        "invalid": sum(c.invalid for c in counts),
    }
    return render(request, "admin/devices.html", context, principal=principal)
