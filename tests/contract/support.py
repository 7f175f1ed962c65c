"""Shared by the contract tests: the one JSON error shape every 4xx/5xx must have, and test data."""

from __future__ import annotations

from typing import Any

import httpx

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


def assert_error(
    response: httpx.Response, status: int | tuple[int, ...], code: str | None = None
) -> dict[str, Any]:
    """Assert ``response`` is an error with ``status`` (or one of several) in the shape; return ``error``."""
    allowed = status if isinstance(status, tuple) else (status,)
    assert response.status_code in allowed, f"{response.status_code} not in {allowed}: {response.text[:500]}"
    problems = error_shape_problems(response)
    assert problems == [], f"{response.request.method} {response.request.url}: {problems}"
    error: dict[str, Any] = response.json()["error"]
    if code is not None:
        assert error["code"] == code, error
    return error
