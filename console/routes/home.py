"""The landing page: what the signed-in user may open."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import PUBLIC, CurrentPrincipal
from console.security import verify_csrf
from console.templating import BASE, render

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)


@router.get("/", dependencies=[PUBLIC])
async def root_redirect() -> Response:
    return RedirectResponse(BASE + "/home", status_code=303)


@router.get("/home")
async def home(request: Request, principal: CurrentPrincipal) -> Response:
    return render(request, "home.html", principal=principal)
