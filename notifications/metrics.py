"""Prometheus metrics of the send pipeline, counted in the worker process that sends
(docs/observability.md lists every metric, its labels and what it means).

The send path counts once per chunk of results (``count_results``: a few ``inc`` calls with
counts, whatever the chunk's size), never once per message with a label lookup.
The providers' request latency is theirs (notifications/providers/latency.py).
Labels stay bounded: providers are the provider keys of ``dispatch.provider_key`` (``fcm``,
``apns:production``, ``apns:sandbox``), outcomes and retry reasons the fixed sets below; never a
token, a device, a user or a notification id.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Sequence

from prometheus_client import Counter

from notifications.dispatch import key_of
from notifications.outbox import ClaimedDelivery
from notifications.providers.base import STOPPED, Outcome, SendResult

DELIVERIES = Counter(
    "chuong_push_deliveries_total",
    "Delivery attempts by provider and outcome: sent (accepted by the provider), invalid_token "
    "(the provider says the token is dead), retry (the provider asked to try again later), failed "
    "(permanent), deferred (held back by the shared pacing before the provider), skipped (device "
    "retired since the fan-out), cancelled (the push was cancelled before the request started)",
    ["provider", "outcome"],
)
RETRIES = Counter(
    "chuong_push_retries_total",
    "Attempts that asked for another (a provider's retry answer, or held back by the pacing), by "
    "provider and reason (quota, unavailable, provider_error, timeout, connection, auth, paced, "
    "other); a delivery out of attempts or past its TTL fails instead of retrying",
    ["provider", "reason"],
)
RECONCILER_REQUEUED = Counter(
    "chuong_reconciler_requeued_total",
    "Jobs the reconciler queued again because their work was due and nobody held it (a lost "
    "job, a killed worker, a flushed Redis): fan_out or send_batch",
    ["job"],
)
RECONCILER_CLOSED = Counter(
    "chuong_reconciler_closed_deliveries_total",
    "Deliveries the reconciler closed: expired (past the TTL) or cancelled",
    ["reason"],
)

# The provider's error codes (notifications/providers/fcm.py, apns.py) by what they mean; codes
# starting with "transport:" or "auth:" are the client's own; "rate_limited" is the pacing's.
RETRY_REASONS = {
    "QUOTA_EXCEEDED": "quota",
    "TooManyRequests": "quota",
    "UNAVAILABLE": "unavailable",
    "ServiceUnavailable": "unavailable",
    "Shutdown": "unavailable",
    "INTERNAL": "provider_error",
    "InternalServerError": "provider_error",
    "UNKNOWN": "provider_error",
    "DEADLINE_EXCEEDED": "timeout",
    "timeout": "timeout",
    "rate_limited": "paced",
}
RETRY_PREFIXES = (
    ("transport:", "connection"),
    ("auth:", "auth"),
    ("HTTP_429", "quota"),
    ("HTTP_5", "unavailable"),
)


def retry_reason(error_code: str | None) -> str:
    code = error_code or ""
    reason = RETRY_REASONS.get(code)
    if reason is not None:
        return reason
    for prefix, meaning in RETRY_PREFIXES:
        if code.startswith(prefix):
            return meaning
    return "other"


def outcome_of(result: SendResult) -> str:
    if result is STOPPED:
        return "cancelled"
    if result.outcome is Outcome.ACCEPTED:
        return "sent"
    if result.outcome is Outcome.INVALID_TOKEN:
        return "skipped" if result.error_code == "device_retired" else "invalid_token"
    if result.outcome is Outcome.RETRY:
        return "retry" if result.attempted else "deferred"
    return "failed"


def count_results(results: Sequence[tuple[ClaimedDelivery, SendResult]]) -> None:
    """Count one chunk's ``(delivery, result)`` pairs, as ``dispatch.send_claimed`` returns them
    (``STOPPED`` ones included: they count as cancelled)."""
    # Rows tallied by what decides their labels (a C-level count; a chunk has a handful of
    # distinct ones), then each distinct kind labelled once.
    kinds = Tally(
        (d.provider, d.apns_environment, r is STOPPED, r.outcome, r.attempted, r.error_code)
        for d, r in results
    )
    outcomes: Tally[tuple[str, str]] = Tally()
    retries: Tally[tuple[str, str]] = Tally()
    for (name, environment, stopped, outcome_kind, attempted, code), count in kinds.items():
        provider = key_of(name, environment)
        result = STOPPED if stopped else SendResult(outcome_kind, error_code=code, attempted=attempted)
        outcome = outcome_of(result)
        outcomes[provider, outcome] += count
        if outcome in ("retry", "deferred"):
            retries[provider, retry_reason(code)] += count
    for (provider, outcome), count in outcomes.items():
        DELIVERIES.labels(provider, outcome).inc(count)
    for (provider, reason), count in retries.items():
        RETRIES.labels(provider, reason).inc(count)
