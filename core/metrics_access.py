"""Who may read Prometheus metrics. The API's ``GET /metrics`` and every worker's metrics
endpoint answer the same way: with ``CHUONG_METRICS_TOKEN`` set (production requires it,
core/production.py) only a request carrying ``Authorization: Bearer <token>``; without one, anyone
(development and tests)."""

from __future__ import annotations

from core.config import get_settings
from core.crypto import constant_time_equals


def metrics_access_allowed(authorization: str | None) -> bool:
    token = get_settings().metrics_token
    if token is None:
        return True
    supplied = (authorization or "").removeprefix("Bearer ").strip()
    return constant_time_equals(supplied, token.get_secret_value())
