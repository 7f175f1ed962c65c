"""The error answers in the OpenAPI document: every operation declares the one JSON error shape
(api/errors.py) for the statuses the middleware, the dependencies and the error handlers can
give it, so that the document a client generates code from says what really comes back. The
contract tests check every response against it (tests/contract/test_schemathesis.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `validation_error`, `not_found`")
    message: str = Field(description="For people; never echoes the offending input")
    details: list[dict[str, Any]] = Field(description="Per-field problems of a 422 (`loc`, `msg`, `type`)")
    request_id: str | None = Field(description="Same as the X-Request-ID response header")


class ErrorBody(BaseModel):
    """``{"error": {"code", "message", "details", "request_id"}}``"""

    error: ErrorInfo


_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer", "minimum": 1}}
}

# Which statuses any operation may answer, and why. Authentication and permission checks, URL
# hygiene, the body-size limit, rate limits and the database's availability are not specific to
# one route, so the list is global rather than a guess per route.
ERROR_STATUSES: dict[int, str] = {
    400: "The request is malformed (e.g. a cursor that is not ours)",
    401: "No valid credentials",
    403: "Not allowed for this caller (role, unit, MFA or step-up, API-client scope)",
    404: "No such object, or not visible to this caller",
    406: "The Accept header asks for something this operation does not produce",
    409: "Conflicts with the current state of the object",
    413: "The body is larger than the limit",
    415: "The body is not JSON",
    422: "The request does not pass validation (`details` names the fields)",
    429: "Too many requests; see Retry-After",
    500: "Unexpected error (logged with the request id)",
    503: "A dependency (database, Redis) is unavailable; retry later",
}


def error_responses() -> dict[int | str, dict[str, Any]]:
    responses: dict[int | str, dict[str, Any]] = {}
    for status, description in ERROR_STATUSES.items():
        response: dict[str, Any] = {"model": ErrorBody, "description": description}
        if status in (429, 503):
            response["headers"] = _RETRY_AFTER
        responses[status] = response
    return responses
