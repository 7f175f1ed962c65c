"""The console's cookie session, CSRF tokens and response headers.

The console does not have an authentication path of its own. Its cookie names an ordinary sign-in
session (``auth_sessions``) and the user's token version, sealed with an HMAC under the token
pepper. On every request ``ConsoleGuard`` turns a valid cookie into a short-lived access token
for that session and hands it to the very policies the API uses (``api.deps``), which check the
session, the account and the token version against the database. A disabled account, an ended
session or a role change therefore refuses the console's next click exactly as it refuses the
API's next call.

CSRF: a random token lives in its own HttpOnly, SameSite=Strict cookie and must come back in
every unsafe request, as the ``csrf_token`` form field or the ``X-CSRF-Token`` header (HTMX sends
the header, configured on ``<body>``). A cross-site page can neither read the cookie nor guess the
value; SameSite=Strict also keeps the session cookie off cross-site requests altogether.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from http.cookies import SimpleCookie

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth.tokens import issue_access_token
from core.clock import utcnow
from core.crypto import constant_time_equals, keyed_hash
from core.errors import Forbidden

SESSION_COOKIE = "chuong_console"
CSRF_COOKIE = "chuong_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
# A console sign-in lasts a working day at most. The session's own limits (auth/session_limits.py:
# 12 hours and 30 idle minutes for staff) end it first and the sign-in page says why
# ("session_expired"); the cookie's bound, a few minutes later, is only a backstop.
SESSION_MAX_AGE_SECONDS = 12 * 3600
COOKIE_BACKSTOP_SECONDS = SESSION_MAX_AGE_SECONDS + 300
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# No inline script or style anywhere: htmx and the console's own file come from /console/static.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
CONSOLE_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


@dataclass(frozen=True)
class CookieSession:
    user_id: uuid.UUID
    session_id: uuid.UUID
    token_version: int
    issued_at: int


def _mac(payload: str) -> str:
    return keyed_hash(f"console-session|{payload}")


def seal_session(*, user_id: uuid.UUID, session_id: uuid.UUID, token_version: int) -> str:
    payload = f"v1.{user_id.hex}.{session_id.hex}.{token_version}.{int(utcnow().timestamp())}"
    return f"{payload}.{_mac(payload)}"


def open_session(value: str) -> CookieSession | None:
    """The cookie's contents if its seal is intact and it is not too old; else None."""
    payload, _, mac = value.rpartition(".")
    if not payload or not constant_time_equals(mac, _mac(payload)):
        return None
    try:
        version, user_hex, session_hex, token_version, issued = payload.split(".")
        if version != "v1":
            return None
        cookie = CookieSession(uuid.UUID(user_hex), uuid.UUID(session_hex), int(token_version), int(issued))
    except ValueError:
        return None
    age = utcnow().timestamp() - cookie.issued_at
    return cookie if age + 60 >= 0 and age < COOKIE_BACKSTOP_SECONDS else None


def cookie_header(name: str, value: str, *, max_age: int | None) -> str:
    """Secure is set even on plain HTTP: browsers treat http://127.0.0.1 and localhost as secure
    contexts, and anything else must be served over HTTPS anyway."""
    parts = [f"{name}={value}", "Path=/console", "HttpOnly", "Secure", "SameSite=Strict"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts)


def session_cookie(value: str) -> str:
    return cookie_header(SESSION_COOKIE, value, max_age=COOKIE_BACKSTOP_SECONDS)


def clear_session_cookie() -> str:
    return cookie_header(SESSION_COOKIE, "", max_age=0)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_cookie(token: str) -> str:
    return cookie_header(CSRF_COOKIE, token, max_age=None)


def csrf_token(request: Request) -> str:
    """The token to embed in this response's forms (set by ``ConsoleGuard``)."""
    token: str = request.scope["state"]["csrf_token"]
    return token


async def verify_csrf(request: Request) -> None:
    """Router dependency: every unsafe request must echo the CSRF cookie."""
    if request.method not in UNSAFE_METHODS:
        return
    expected = request.cookies.get(CSRF_COOKIE, "")
    supplied = request.headers.get(CSRF_HEADER, "")
    if not supplied and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        supplied = value if isinstance(value, str) else ""
    if not expected or not supplied or not constant_time_equals(expected, supplied):
        raise Forbidden(
            "The form has expired or did not come from this console; reload and retry", code="csrf"
        )


class ConsoleGuard:
    """Pure ASGI middleware of the console app: cookie → access token, CSRF cookie, headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookies = _cookies(scope)
        # Only the cookie authenticates console pages: a bearer header is dropped, so a page can
        # never run with credentials other than the browser's own session.
        headers = [(k, v) for k, v in scope["headers"] if k != b"authorization"]
        sealed = open_session(cookies.get(SESSION_COOKIE, ""))
        if sealed is not None:
            token, _ = issue_access_token(
                user_id=sealed.user_id,
                session_id=sealed.session_id,
                token_version=sealed.token_version,
                now=utcnow(),
            )
            headers.append((b"authorization", f"Bearer {token}".encode()))
        csrf = cookies.get(CSRF_COOKIE, "")
        fresh_csrf = None
        if len(csrf) < 32:
            csrf = fresh_csrf = new_csrf_token()
        scope = {**scope, "headers": headers}
        scope.setdefault("state", {})
        scope["state"] = {**scope["state"], "csrf_token": csrf, "console_session": sealed}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                for name, value in CONSOLE_HEADERS:
                    response_headers.append(name.decode(), value.decode())
                # A handler that rotates the token (sign-in) has already set its own cookie.
                if fresh_csrf is not None and not scope["state"].get("csrf_rotated"):
                    response_headers.append("set-cookie", csrf_cookie(fresh_csrf))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _cookies(scope: Scope) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for name, value in scope["headers"]:
        if name == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # noqa: S112 (a malformed cookie header is simply ignored)
                continue
    return {key: morsel.value for key, morsel in jar.items()}


def rotate_csrf(request: Request) -> str:
    """A new CSRF token after sign-in (no token fixation across the sign-in boundary)."""
    token = new_csrf_token()
    request.scope["state"]["csrf_token"] = token
    request.scope["state"]["csrf_rotated"] = True
    return token
