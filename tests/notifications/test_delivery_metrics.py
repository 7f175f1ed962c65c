"""The send pipeline's metrics after real sends through the emulator, read from a worker's own
metrics endpoint as Prometheus scrapes it: deliveries by provider and outcome, retries by reason,
the providers' request latency, dead tokens, the reconciler's re-queues, and bounded labels."""

from __future__ import annotations

import re
import socket
import uuid

import httpx
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from core import clock
from notifications.metrics import RETRY_REASONS, outcome_of, retry_reason
from notifications.providers.base import STOPPED, Outcome, SendResult
from tests.notifications.conftest import register_devices
from tests.notifications.helpers import broadcast, central_sender, run_workers
from workers.delivery_jobs import fan_out, reconcile
from workers.metrics_server import start_metrics_server

OUR_FAMILIES = (
    "chuong_push_deliveries",
    "chuong_push_retries",
    "chuong_push_provider_request_duration_seconds",
    "chuong_device_tokens_invalidated",
    "chuong_reconciler_requeued",
    "chuong_reconciler_closed_deliveries",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _scrape(settings) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a worker's /metrics, as Prometheus reads it."""
    server = await start_metrics_server(settings, queue="high")
    assert server is not None
    try:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        await server.close()
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_a_real_send_counts_outcomes_retries_latency_and_dead_tokens_per_provider(
    client, emulator, worker_ctx, emulated_settings, monkeypatch
):
    monkeypatch.setattr(emulated_settings, "worker_metrics_port", _free_port())
    specs = [("fcm", f"ok-{uuid.uuid4().hex}", "vi") for _ in range(3)]
    specs += [("fcm", f"unregistered-{uuid.uuid4().hex}", "vi")]
    specs += [("fcm", f"unavailable-{uuid.uuid4().hex}", "vi") for _ in range(2)]
    specs += [("apns", uuid.uuid4().hex * 2, "en") for _ in range(2)]
    specs += [("apns", f"unregistered-{uuid.uuid4().hex}", "vi")]
    specs += [("apns", f"quota-{uuid.uuid4().hex}", "vi")]
    await register_devices(specs)
    headers = await central_sender(client)
    before = await _scrape(emulated_settings)

    await broadcast(client, headers)
    await run_workers(worker_ctx)

    after = await _scrape(emulated_settings)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    deliveries = "chuong_push_deliveries_total"
    assert delta(deliveries, provider="fcm", outcome="sent") == 3
    assert delta(deliveries, provider="fcm", outcome="invalid_token") == 1
    assert delta(deliveries, provider="fcm", outcome="retry") == 2
    assert delta(deliveries, provider="apns:production", outcome="sent") == 2
    assert delta(deliveries, provider="apns:production", outcome="invalid_token") == 1
    assert delta(deliveries, provider="apns:production", outcome="retry") == 1
    assert delta("chuong_push_retries_total", provider="fcm", reason="unavailable") == 2
    assert delta("chuong_push_retries_total", provider="apns:production", reason="quota") == 1
    invalidated = "chuong_device_tokens_invalidated_total"
    assert delta(invalidated, provider="fcm", reason="provider_rejected_token") == 1
    assert delta(invalidated, provider="apns", reason="provider_rejected_token") == 1
    latency = "chuong_push_provider_request_duration_seconds"
    assert delta(f"{latency}_count", provider="fcm") == 6
    assert delta(f"{latency}_count", provider="apns:production") == 4
    assert delta(f"{latency}_bucket", provider="fcm", le="+Inf") == 6
    assert delta(f"{latency}_sum", provider="fcm") > 0

    # Bounded labels: no token, device, user or notification id in any of them.
    tokens = {token for _, token, _ in specs}
    for (name, labels), _ in after.items():
        if not name.startswith(OUR_FAMILIES):
            continue
        for label, value in labels:
            assert value not in tokens and not any(token in value for token in tokens), (name, label)
            assert re.fullmatch(r"[a-z_:+.0-9e-]*|\+Inf", value), (name, label, value)


async def test_the_reconciler_counts_what_it_queues_again(client, emulator, worker_ctx):
    await register_devices([("fcm", f"ok-{uuid.uuid4().hex}", "vi") for _ in range(2)])
    headers = await central_sender(client)
    notification_id = await broadcast(client, headers)
    await fan_out(worker_ctx, notification_id)  # its send job is queued, and then lost
    requeued = REGISTRY.get_sample_value("chuong_reconciler_requeued_total", {"job": "send_batch"}) or 0.0

    clock.advance(120)  # past the reconciler's grace time
    stats = await reconcile(worker_ctx)

    assert stats["batches"] == 1
    assert (
        REGISTRY.get_sample_value("chuong_reconciler_requeued_total", {"job": "send_batch"}) == requeued + 1
    )


def test_outcomes_and_retry_reasons_are_fixed_sets() -> None:
    assert outcome_of(SendResult.accepted("m")) == "sent"
    assert outcome_of(SendResult(Outcome.INVALID_TOKEN, error_code="UNREGISTERED")) == "invalid_token"
    assert outcome_of(SendResult(Outcome.INVALID_TOKEN, error_code="device_retired")) == "skipped"
    assert outcome_of(SendResult(Outcome.RETRY, error_code="UNAVAILABLE")) == "retry"
    assert outcome_of(SendResult(Outcome.RETRY, error_code="rate_limited", attempted=False)) == "deferred"
    assert outcome_of(STOPPED) == "cancelled"
    assert outcome_of(SendResult(Outcome.FAILED, error_code="no_provider:apns:sandbox")) == "failed"
    reasons = {retry_reason(code) for code in RETRY_REASONS}
    reasons |= {retry_reason(code) for code in ("transport:ClientOSError", "auth:RefreshError", "HTTP_429")}
    reasons |= {retry_reason(code) for code in ("HTTP_502", None, "something new")}
    assert reasons == {
        "quota",
        "unavailable",
        "provider_error",
        "timeout",
        "paced",
        "connection",
        "auth",
        "other",
    }


def test_a_chunk_is_counted_as_each_of_its_rows_would_be() -> None:
    """``count_results`` tallies a chunk by kind of row, then labels each kind once: the counts
    must be those of labelling every row by itself (``provider_key``, ``outcome_of``)."""
    from collections import Counter

    from notifications.dispatch import provider_key
    from notifications.metrics import DELIVERIES, RETRIES, count_results
    from notifications.outbox import ClaimedDelivery

    kinds = [
        SendResult.accepted("m"),
        SendResult(Outcome.INVALID_TOKEN, error_code="UNREGISTERED"),
        SendResult(Outcome.INVALID_TOKEN, error_code="device_retired"),
        SendResult(Outcome.RETRY, error_code="UNAVAILABLE"),
        SendResult(Outcome.RETRY, error_code="QUOTA_EXCEEDED"),
        SendResult(Outcome.RETRY, error_code="rate_limited", attempted=False),
        # Not STOPPED itself though equal to it: a deferral, not a cancel.
        SendResult(Outcome.RETRY, error_code="cancelled", attempted=False),
        STOPPED,
        SendResult(Outcome.FAILED, error_code="transport:x"),
    ]
    targets = [("fcm", None), ("apns", None), ("apns", "sandbox"), ("apns", "production")]
    results = [
        (ClaimedDelivery(i, uuid.uuid4(), provider, "vi", 0, "t", environment), kinds[i % len(kinds)])
        for i, (provider, environment) in enumerate(targets * 20)
    ]
    expected_outcomes = Counter((provider_key(d), outcome_of(r)) for d, r in results)
    expected_retries = Counter(
        (provider_key(d), retry_reason(r.error_code))
        for d, r in results
        if outcome_of(r) in ("retry", "deferred")
    )

    def read() -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]]:
        outcomes = Counter({key: DELIVERIES.labels(*key)._value.get() for key in expected_outcomes})
        retries = Counter({key: RETRIES.labels(*key)._value.get() for key in expected_retries})
        return outcomes, retries

    outcomes_before, retries_before = read()
    count_results(results)
    outcomes_after, retries_after = read()
    assert outcomes_after - outcomes_before == expected_outcomes
    assert retries_after - retries_before == expected_retries
