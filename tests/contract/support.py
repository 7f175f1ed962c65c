"""Shared by the contract tests: the one JSON error shape every 4xx/5xx must have, that the
OpenAPI document declares it, and test data."""

from __future__ import annotations

import functools
from typing import Any

import httpx
import schemathesis
from schemathesis.core.failures import FailureGroup

ERROR_KEYS = {"code", "message", "details", "request_id"}
# Accepted by the password policy (long enough, zxcvbn score ≥ 3).
STRONG_PASSWORD = "Vịnh-Hạ-Long 7 tàu 42 sóng"


def error_shape_problems(response: httpx.Response) -> list[str]:
    """What is wrong with an error response's shape (empty when it is right)."""
    problems: list[str] = []
    if not response.headers.get("content-type", "").startswith("application/json"):
        problems.append(f"content-type is {response.headers.get('content-type')!r}, not application/json")
        return problems
    try:
        body = response.json()
    except ValueError:
        return [f"body is not JSON: {response.text[:200]!r}"]
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return [f'body is not {{"error": {{...}}}}: {body!r:.300}']
    error = body["error"]
    if set(error) != ERROR_KEYS:
        problems.append(f"error keys are {sorted(error)}, expected {sorted(ERROR_KEYS)}")
    for key in ("code", "message"):
        if not isinstance(error.get(key), str) or not error.get(key):
            problems.append(f"error.{key} is not a non-empty string: {error.get(key)!r}")
    if not isinstance(error.get("details"), list):
        problems.append(f"error.details is not a list: {error.get('details')!r}")
    header = response.headers.get("x-request-id")
    if not header:
        problems.append("no X-Request-ID response header")
    elif error.get("request_id") != header:
        problems.append(f"error.request_id {error.get('request_id')!r} != X-Request-ID {header!r}")
    return problems


@functools.cache
def _document() -> Any:
    from cli.asgi import create_app

    return schemathesis.openapi.from_dict(create_app(manage_resources=False).openapi())


def documentation_problems(response: httpx.Response) -> list[str]:
    """How ``response`` differs from what the OpenAPI document promises for its operation: an
    undeclared status, or a body that does not match the declared schema (empty when it conforms;
    requests to no documented operation, such as unknown paths, have nothing to conform to)."""
    try:
        operation = _document().find_operation_by_path(response.request.method, response.request.url.path)
    except Exception:  # a path the router cannot even match (NUL, invalid UTF-8): not an operation
        return []
    if operation is None:
        return []
    declared = {str(status) for status in operation.responses.status_codes}
    if str(response.status_code) not in declared and "default" not in declared:
        return [
            f"{operation.label}: status {response.status_code} is not in the OpenAPI ({sorted(declared)})"
        ]
    # Validated on a copy whose request has no body: a streamed request body cannot be re-read.
    request = httpx.Request(response.request.method, response.request.url)
    copy = httpx.Response(
        response.status_code, headers=response.headers, content=response.content, request=request
    )
    copy.elapsed = response.elapsed
    try:
        operation.validate_response(copy)
    except FailureGroup as exc:
        return [f"{operation.label}: {exc}"]
    return []


def assert_error(
    response: httpx.Response, status: int | tuple[int, ...], code: str | None = None
) -> dict[str, Any]:
    """Assert ``response`` is an error with ``status`` (or one of several) in the shape; return ``error``."""
    allowed = status if isinstance(status, tuple) else (status,)
    assert response.status_code in allowed, f"{response.status_code} not in {allowed}: {response.text[:500]}"
    problems = error_shape_problems(response) + documentation_problems(response)
    assert problems == [], f"{response.request.method} {response.request.url}: {problems}"
    error: dict[str, Any] = response.json()["error"]
    if code is not None:
        assert error["code"] == code, error
    return error
