"""The console as an ASGI app mounted at ``/console`` by the app ``chuong serve`` runs (``cli/asgi.py``).

A sub-application rather than more routers on the API: its errors are HTML pages and redirects
(not the API's JSON shape), its responses carry a Content-Security-Policy, and its routes stay
out of the OpenAPI schema. Authorisation is not its own: every route depends on one of the API's
access policies (``api.deps``), checked against the database on every request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from auth.networks import NETWORK_NOT_ALLOWED
from console import i18n
from console.forms import reject_unstorable_input, safe_next
from console.i18n import _, network_refusal_message
from console.routes import (
    admin,
    apps,
    audit,
    clients,
    delivery,
    devices,
    fields,
    home,
    live,
    news,
    passkeys,
    reports,
    signin,
    tracking,
)
from console.routes import calendar as calendar_pages
from console.routes import sections as section_pages
from console.routes import sms as sms_pages
from console.routes import units as unit_pages
from console.security import ConsoleGuard, clear_session_cookie
from console.templating import BASE, is_htmx, render
from core.db import is_bounded_wait, lost_connection
from core.errors import ChuongError, error_body
from core.logging import get_logger

log = get_logger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"

# Where a restricted session is sent instead of the page it asked for.
_RESTRICTION_PAGES = {
    "mfa_enrolment_required": "/mfa/enrol",
    "mfa_required": "/mfa/verify",
    "passkey_required": "/mfa/verify",
    "password_change_required": "/password",
}


class LanguageMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            i18n.set_language(i18n.pick_language(request.cookies.get(i18n.LANGUAGE_COOKIE), None))
        await self.app(scope, receive, send)


def _redirect(request: Request, path: str, *, clear_session: bool = False) -> Response:
    target = BASE + path
    response: Response
    if is_htmx(request):
        # HTMX follows a redirect inside the fragment it asked for; make it navigate instead.
        response = Response(status_code=204, headers={"HX-Redirect": target})
    else:
        response = RedirectResponse(target, status_code=303)
    if clear_session:
        response.headers.append("set-cookie", clear_session_cookie())
    return response


def wants_data(request: Request) -> bool:
    """An event stream or a JSON read (the live figures), not a page: its errors are the API's one
    JSON shape, and a 401 is a 401 (an EventSource cannot follow a redirect to a sign-in form)."""
    if request.url.path.startswith(f"{BASE}/live/"):
        return True
    accept = request.headers.get("accept", "")
    return "text/html" not in accept and ("text/event-stream" in accept or "application/json" in accept)


def _back(request: Request, exc: ChuongError) -> str:
    """Where to come back after confirming with a passkey: the page of a refused step-up form
    (console.forms.step_up names it), or the page a restricted session asked for."""
    for detail in exc.details:
        if "back" in detail:
            return safe_next(detail["back"])
    return safe_next(request.url.path.removeprefix(BASE)) if request.method == "GET" else "/"


def _error_page(request: Request, status: int, code: str, message: str, back: str = "/") -> Response:
    if wants_data(request):  # a script or the live panel's fetch: the one JSON error shape
        return JSONResponse(error_body(code, message), status_code=status)
    return render(
        request,
        "error.html",
        {"status": status, "code": code, "message": message, "back": back},
        status_code=status,
        headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"} if is_htmx(request) else None,
    )


def create_console_app() -> FastAPI:
    console = FastAPI(
        title="Chuông console",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(reject_unstorable_input)],
    )

    @console.exception_handler(ChuongError)
    async def _chuong(request: Request, exc: ChuongError) -> Response:
        if wants_data(request):
            return JSONResponse(
                error_body(exc.code, exc.message, exc.details),
                status_code=exc.status_code,
                headers=exc.headers,
            )
        if exc.status_code == 401:
            next_path = request.url.path.removeprefix(BASE) or "/"
            return _redirect(
                request, f"/login?next={quote(next_path)}&reason={quote(exc.code)}", clear_session=True
            )
        if exc.status_code == 403 and exc.code in _RESTRICTION_PAGES:
            target = _RESTRICTION_PAGES[exc.code]
            if exc.code == "passkey_required":
                # Also a step-up code refused for a person who must use a passkey: confirm with
                # it, then come back to the form.
                target += f"?next={quote(_back(request, exc))}"
            return _redirect(request, target)
        message = exc.message
        if exc.code == "step_up_required":
            message = _(
                "Enter your current two-factor code in the form to confirm this action, "
                "or confirm with your passkey first."
            )
        elif exc.code == NETWORK_NOT_ALLOWED:
            message = network_refusal_message(exc)
        page = _error_page(request, exc.status_code, exc.code, message, _back(request, exc))
        if exc.status_code == 429:  # the browser (and a script) learn when to come back
            page.headers.update(exc.headers)
        return page

    @console.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        fields = ", ".join(str(err.get("loc", ["?"])[-1]) for err in exc.errors())
        return _error_page(request, 422, "validation_error", _("Please check these fields: ") + fields)

    @console.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        message = _("Page not found") if exc.status_code == 404 else str(exc.detail)
        return _error_page(request, exc.status_code, "http_error", message)

    @console.exception_handler(ConnectionError)
    @console.exception_handler(SQLAlchemyTimeoutError)
    @console.exception_handler(DBAPIError)
    async def _database(request: Request, exc: Exception) -> Response:
        if lost_connection(exc):
            # The database went away under the request (a crash, a restart, a failover).
            return _error_page(
                request, 503, "unavailable", _("The service is briefly unavailable. Try again.")
            )
        if not is_bounded_wait(exc):
            raise exc
        # A bounded wait (core/db.py): nothing was changed; the same page for every cause.
        return _error_page(request, 503, "busy", _("The service is busy; nothing was changed. Try again."))

    console.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for module in (
        signin,
        passkeys,
        home,
        live,
        admin,
        apps,
        clients,
        audit,
        devices,
        news,
        delivery,
        reports,
        tracking,
        unit_pages,
        section_pages,
        calendar_pages,
        sms_pages,
        fields,
    ):
        console.include_router(module.router)
    # Outermost first: the guard must run before the language middleware reads cookies (it does
    # not change them) and before any route sees the request.
    console.add_middleware(LanguageMiddleware)
    console.add_middleware(ConsoleGuard)
    return console


def mount_console(app: Any) -> None:
    """The outer layer (``cli/asgi.py``) mounts the console under /console of the API app."""
    app.mount(BASE, create_console_app())
