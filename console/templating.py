"""Jinja2 environment of the console: autoescaping on for every template, gettext installed."""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse

from auth.principal import Principal
from console import i18n, labels
from console.security import csrf_token

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
BASE = "/console"
# Vietnam has no daylight saving time (D-50): a fixed offset is exact.
VN_TIME = dt.timezone(dt.timedelta(hours=7), "ICT")


def _local_time(value: dt.datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(VN_TIME).strftime("%Y-%m-%d %H:%M:%S")


def _clock_time(unix_seconds: float) -> str:
    """Vietnam time of day (live.js writes the same form)."""
    return dt.datetime.fromtimestamp(unix_seconds, VN_TIME).strftime("%H:%M:%S")


def _local_input(value: dt.datetime) -> str:
    """For ``<input type=datetime-local>`` (Vietnam time)."""
    return value.astimezone(VN_TIME).strftime("%Y-%m-%dT%H:%M")


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        # Every template, whatever its name: user-supplied strings are always escaped.
        autoescape=True,
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]  # added by the i18n extension
        gettext=i18n.gettext, ngettext=i18n.ngettext, newstyle=True
    )
    env.filters["local_time"] = _local_time
    env.filters["local_input"] = _local_input
    env.filters["clock_time"] = _clock_time
    env.filters.update(labels.FILTERS)
    env.globals["base"] = BASE
    return env


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    principal: Principal | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    values = {
        "request": request,
        "csrf_token": csrf_token(request),
        "lang": i18n.current_language(),
        "me": principal.actor if principal is not None else None,
        "principal": principal,
        "permissions": {p.value for p in principal.permissions} if principal is not None else set(),
        "path": request.url.path,
        **(context or {}),
    }
    html = environment().get_template(template).render(values)
    return HTMLResponse(html, status_code=status_code, headers=headers)


def is_htmx(request: Request) -> bool:
    """An HTMX request that wants a fragment (a history restore wants the whole page)."""
    headers = request.headers
    return headers.get("hx-request") == "true" and headers.get("hx-history-restore-request") != "true"
