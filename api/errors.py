"""Every error leaves the API in one JSON shape:
``{"error": {"code", "message", "details", "request_id"}}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.middleware import SECURITY_HEADERS
from core.context import current_context
from core.db import is_bounded_wait, is_write_conflict, lost_connection
from core.errors import ChuongError, error_body
from core.logging import get_logger

log = get_logger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for error in exc.errors():
        # Never echo the offending input back: it may be a password or a lone surrogate that
        # cannot be encoded.
        details.append(
            {
                "loc": [str(part) for part in error.get("loc", ())],
                "msg": str(error.get("msg", "")),
                "type": str(error.get("type", "")),
            }
        )
    return details


def _guard_headers() -> dict[str, str]:
    # The 500 handler's answer bypasses RequestGuard (ServerErrorMiddleware sits outside it), so
    # its headers are added here.
    headers = {name.decode(): value.decode() for name, value in SECURITY_HEADERS}
    headers["X-Request-ID"] = current_context().request_id or ""
    return headers


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ChuongError)
    async def _chuong(_: Request, exc: ChuongError) -> JSONResponse:
        return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "validation_error", "The request is not valid", _validation_details(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(ConnectionError)
    @app.exception_handler(SQLAlchemyTimeoutError)
    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        # Answered by ExceptionMiddleware, inside RequestGuard, which adds the request id and the
        # security headers on the way out: added here too, they went out twice ("id, id").
        if lost_connection(exc):
            log.warning("database_connection_lost", error_type=type(getattr(exc, "orig", exc)).__name__)
            return error_response(
                503,
                "unavailable",
                "The database was unavailable; retry shortly (with the same Idempotency-Key, if any)",
                headers={"Retry-After": "2"},
            )
        if is_write_conflict(exc):
            # A concurrent request took the key or deleted a row this one refers to, after this
            # one's checks: it changed nothing (rolled back), and a 500 would blame the server.
            log.warning("database_write_conflict", error_type=type(getattr(exc, "orig", exc)).__name__)
            return error_response(
                409,
                "conflict",
                "A concurrent change made this request impossible; nothing was changed. "
                "Read the current state and retry if it still applies",
            )
        if not is_bounded_wait(exc):
            log.exception("unhandled_error", error_type=type(exc).__name__)
            return error_response(500, "internal_error", "Internal server error")
        # A wait the service bounds on purpose (core/db.py): the pool had no free connection in
        # time, or PostgreSQL cancelled a lock wait or a statement, or broke a deadlock. The
        # request changed nothing (its transaction rolled back); the client may retry.
        log.warning("database_wait_bounded", error_type=type(getattr(exc, "orig", exc)).__name__)
        busy = "The service is busy; nothing was changed, retry shortly"
        return error_response(503, "busy", busy, headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", error_type=type(exc).__name__)
        # Starlette answers this one from ServerErrorMiddleware, which sits outside RequestGuard,
        # so the guard's headers (request id, security headers) must be added here.
        headers = _guard_headers()
        return error_response(500, "internal_error", "Internal server error", headers=headers)
