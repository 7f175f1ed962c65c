"""One error base for the whole service. The API maps every ``ChuongError`` (and every framework
error) to one JSON shape::

    {"error": {"code": "not_found", "message": "...", "details": [...], "request_id": "..."}}
"""

from __future__ import annotations

from typing import Any, ClassVar

from core.context import current_context


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The one shape; the API's handlers (api/errors.py) and the console's data endpoints use it."""
    return {
        "error": {
            "code": code,
            "message": message,
            "details": details or [],
            "request_id": current_context().request_id,
        }
    }


class ChuongError(Exception):
    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]  # instance override of the class default
        self.details = details or []
        self.headers = headers or {}


class BadRequest(ChuongError):
    status_code = 400
    code = "bad_request"


class Unauthorized(ChuongError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str = "Authentication required", **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kwargs)


class Forbidden(ChuongError):
    status_code = 403
    code = "forbidden"


class NotFound(ChuongError):
    status_code = 404
    code = "not_found"

    def __init__(self, message: str = "Not found", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)


class Conflict(ChuongError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(ChuongError):
    status_code = 413
    code = "payload_too_large"


class Unprocessable(ChuongError):
    status_code = 422
    code = "validation_error"


class TooManyRequests(ChuongError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": str(max(1, retry_after))})
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServiceUnavailable(ChuongError):
    status_code = 503
    code = "unavailable"
