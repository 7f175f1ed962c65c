"""Prometheus metrics of the device registry (docs/observability.md)."""

from __future__ import annotations

from prometheus_client import Counter

TOKENS_INVALIDATED = Counter(
    "chuong_device_tokens_invalidated_total",
    "Devices retired because their push token is dead, by provider (fcm, apns) and reason "
    "(provider_rejected_token: the provider answered that the token is unregistered or invalid)",
    ["provider", "reason"],
)
# The label's bounded set: any other reason a caller passes is counted as "other" (the device row
# keeps the reason as given).
INVALIDATION_REASONS = frozenset({"provider_rejected_token"})


def reason_label(reason: str) -> str:
    return reason if reason in INVALIDATION_REASONS else "other"
