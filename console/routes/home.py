"""The landing page: what the signed-in user may open."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import PUBLIC, CurrentPrincipal
from auth.roles import Permission
from console.security import verify_csrf
from console.templating import BASE, render
from notifications import headline

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)


@router.get("/", dependencies=[PUBLIC])
async def root_redirect() -> Response:
    return RedirectResponse(BASE + "/home", status_code=303)


@router.get("/home")
async def home(request: Request, principal: CurrentPrincipal) -> Response:
    # Operators see the service's live figures, drawn on the server first (no script needed to read
    # them), then kept current by live.js over /console/live/stream.
    figures = await headline.read() if principal.has(Permission.OPERATIONS_READ) else None
    return render(request, "home.html", {"figures": figures}, principal=principal)
