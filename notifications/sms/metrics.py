"""Prometheus metrics of the SMS fallback and the push circuit breaker (process-local: the
process that sends or records increments them; docs/observability.md). Whether a breaker is open
is shared state in Redis, exported by the API (notifications/figures.py), not a gauge here: a
process that did not see it open or close would report it wrong."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SMS_MESSAGES = Counter(
    "chuong_sms_messages_total",
    "SMS fallback decisions and sends by status (sent, failed, retrying, capped, no_phone)",
    ["status", "reason"],
)
BREAKER_ALERTS = Counter(
    "chuong_push_breaker_alerts_total", "Times a push provider's circuit breaker opened", ["provider"]
)
DEGRADED_MODE = Gauge(
    "chuong_sms_degraded_mode",
    "1 while the operator's SMS degraded mode is on",
    multiprocess_mode="mostrecent",  # several API processes: the last switch wins (api/routers/health.py)
)
