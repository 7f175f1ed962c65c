"""Pure ASGI middleware (no BaseHTTPMiddleware: it would break contextvars and streaming).

``RequestGuard`` runs first for every HTTP request: it gives the request an id and a context,
rejects bodies above the size limit and URLs carrying NUL or invalid UTF-8, counts the request
for Prometheus, writes one access-log line and adds the security headers.
"""

from __future__ import annotations

import re
import time
import uuid
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson
import structlog
from prometheus_client import Counter, Histogram
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.client_ip import client_ip
from core.codes import parse_ascii_int
from core.context import RequestContext, set_context
from core.errors import PayloadTooLarge
from core.logging import get_logger

log = get_logger("chuong.access")

REQUESTS = Counter("chuong_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "chuong_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


# The metrics' children by label values, bound once: ``labels()`` takes a lock and builds its key
# on every call. Label values are bounded (methods, route templates, statuses), so are these.
@lru_cache(maxsize=4096)
def _requests_child(method: str, template: str, status: int) -> Any:
    return REQUESTS.labels(method, template, str(status))


@lru_cache(maxsize=4096)
def _latency_child(method: str, template: str) -> Any:
    return LATENCY.labels(method, template)


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def _error(status: int, code: str, message: str, request_id: str) -> tuple[dict[str, Any], bytes]:
    body = orjson.dumps(
        {"error": {"code": code, "message": message, "details": [], "request_id": request_id}}
    )
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
            *SECURITY_HEADERS,
        ],
    }
    return start, body


def _url_is_clean(scope: Scope) -> bool:
    for raw in (
        scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape"),
        scope["query_string"],
    ):
        decoded = unquote_to_bytes(raw.replace(b"+", b" "))
        if b"\x00" in decoded:
            return False
        try:
            decoded.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True


def _route_template(scope: Scope) -> str:
    """The matched route as a template (``/v1/users/{user_id}``), to keep metric labels bounded.
    Rebuilt from the path parameters so it holds for routes included under any prefix."""
    if scope.get("route") is None:
        return "unmatched"
    names = {str(value).lower(): name for name, value in (scope.get("path_params") or {}).items()}
    return "/".join(
        f"{{{names[segment.lower()]}}}" if segment.lower() in names else segment
        for segment in scope["path"].split("/")
    )


class RequestGuard:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        supplied = connection.headers.get("x-request-id", "")
        request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        ctx = RequestContext(
            request_id=request_id,
            ip=client_ip(connection),
            # NUL would make PostgreSQL refuse the session and audit rows that store it (a 500).
            user_agent=connection.headers.get("user-agent", "").replace("\x00", "")[:512] or None,
        )
        set_context(ctx)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status_holder = {"status": 500}
        # Set once a body without an honest Content-Length outgrows the limit. FastAPI turns any
        # error raised while it reads the body into "400 There was an error parsing the body", so
        # the guard then drops whatever the app answers and sends the 413 itself.
        too_large = {"hit": False, "replied": False, "app_started": False}

        async def send_wrapper(message: Message) -> None:
            if too_large["hit"] and not too_large["app_started"]:
                if not too_large["replied"]:
                    too_large["replied"] = True
                    status_holder["status"] = 413
                    await self._reply(
                        send,
                        413,
                        "payload_too_large",
                        f"Request body is limited to {self.max_body_bytes} bytes",
                        request_id,
                    )
                return
            if message["type"] == "http.response.start":
                too_large["app_started"] = True
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.extend(SECURITY_HEADERS)
                message = {**message, "headers": headers}
            await send(message)

        declared = connection.headers.get("content-length")
        if not _url_is_clean(scope):
            await self._reply(
                send, 422, "validation_error", "The URL contains NUL or invalid UTF-8", request_id
            )
            status_holder["status"] = 422
        elif declared is not None and (
            # ASCII digits only: a latin-1 "²" passes str.isdigit() and then int() raises.
            (declared_bytes := parse_ascii_int(declared, maximum=2**63 - 1)) is None
            or declared_bytes > self.max_body_bytes
        ):
            await self._reply(
                send,
                413,
                "payload_too_large",
                f"Request body is limited to {self.max_body_bytes} bytes",
                request_id,
            )
            status_holder["status"] = 413
        else:
            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body_bytes:
                        too_large["hit"] = True
                        raise PayloadTooLarge(f"Request body is limited to {self.max_body_bytes} bytes")
                return message

            try:
                await self.app(scope, limited_receive, send_wrapper)
            except Exception:
                if not too_large["hit"] or too_large["app_started"]:
                    self._record(scope, ctx, started, status_holder["status"])
                    raise
                # The size error escaped the app: answer 413 here rather than let it become a 500.
                await send_wrapper({"type": "http.response.start", "status": 413, "headers": []})
        self._record(scope, ctx, started, status_holder["status"])

    @staticmethod
    def _record(scope: Scope, ctx: RequestContext, started: float, status: int) -> None:
        """Metrics and the access-log line; also for an exception on its way to the 500 handler."""
        elapsed = time.perf_counter() - started
        template = _route_template(scope)
        method = scope["method"]
        _requests_child(method, template, status).inc()
        _latency_child(method, template).observe(elapsed)
        log.info(
            "request",
            method=scope["method"],
            route=template,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
            ip=ctx.ip,
            actor_id=str(ctx.actor_id) if ctx.actor_id else None,
        )

    @staticmethod
    async def _reply(send: Send, status: int, code: str, message: str, request_id: str) -> None:
        start, body = _error(status, code, message, request_id)
        await send(start)
        await send({"type": "http.response.body", "body": body})
