"""The shared send budget in Redis: every worker draws from one bucket, a quota answer seen by
one worker pauses all of them, breaking news goes ahead of bulk, and a Redis outage never holds
a delivery back. Time is passed in (or moved with core.clock): nothing here sleeps."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from core import clock
from core.config import get_settings
from notifications import ratecontrol
from notifications.content import PushContent, PushSpec
from notifications.payloads import render
from notifications.providers.base import Outcome, PushRequest
from notifications.providers.paced import RATE_LIMITED, PacedProvider
from notifications.providers.registry import build_providers, close_providers
from notifications.ratecontrol import Lane, RateController
from tests.notifications.conftest import register_devices
from tests.notifications.helpers import broadcast, central_sender, load, run_workers
from workers.context import WorkerResources, arq_ctx, resources_of
from workers.delivery_jobs import send_batch

T0 = 1000.0  # small, so that sums of seconds stay exact enough for the boundaries below


def settings(**changes: object):
    # 6,000 a minute = 100 a second; a bucket one second deep; bulk gets 20% under contention.
    base = {
        "fcm_quota_per_minute": 6000,
        "pacing_burst_seconds": 1.0,
        "pacing_bulk_share": 0.2,
        "pacing_high_demand_seconds": 2.0,
        "pacing_quota_backoff_seconds": 60.0,
    }
    return get_settings().model_copy(update=base | changes)


def spec(priority: str = "normal") -> PushSpec:
    return PushSpec(
        id=str(uuid.uuid4()),
        content=PushContent(
            kind="breaking_news",
            priority=priority,
            sensitivity="public",
            title={"vi": "Tin nóng"},
            body={"vi": "Nội dung"},
        ),
    )


def requests(tokens: list[str], priority: str = "normal") -> list[PushRequest]:
    the_spec = spec(priority)
    push = render(the_spec, "vi")
    return [PushRequest(token=token, spec=the_spec, push=push) for token in tokens]


async def clock_sleep(seconds: float) -> None:
    """What a worker's wait looks like to the service clock, without waiting."""
    clock.advance(seconds)


async def test_two_workers_share_one_budget(redis):
    config = settings(pacing_bulk_share=0.5)  # so the smallest slice worth a call is 50
    worker_a, worker_b = RateController(settings=config), RateController(settings=config)
    first = await worker_a.acquire("fcm", "bulk", 80, now=T0)
    second = await worker_b.acquire("fcm", "bulk", 80, now=T0)
    assert first.granted == 80
    # 20 permits are left; a slice of fewer than 50 is not worth a call: wait for 30 more.
    assert second.granted == 0 and second.wait == pytest.approx(0.3)
    assert (await worker_b.acquire("fcm", "bulk", 80, now=T0 + 0.305)).granted == 50

    # Two greedy workers for 10 simulated seconds never exceed the quota together.
    workers = [worker_a, worker_b]
    next_at = [T0 + 0.31, T0 + 0.31]
    granted = 0
    while min(next_at) < T0 + 10.31:
        index = next_at.index(min(next_at))
        grant = await workers[index].acquire("fcm", "bulk", 500, now=next_at[index])
        granted += grant.granted
        next_at[index] += grant.wait
    # The bucket was empty at T0 + 0.31; 10 s at 100/s refill it by 1,000 (+ what was left).
    assert 950 <= granted <= 1000 + 100


async def test_apns_has_its_own_pace(redis):
    controller = RateController(settings=settings(apns_pace_per_second=10.0))
    assert (await controller.acquire("fcm", "bulk", 100, now=T0)).granted == 100
    apns = await controller.acquire("apns", "bulk", 100, now=T0)
    # A pace of 10/s with a one-second bucket grants 10 at a time; then it takes 0.2 s for the
    # smallest slice worth a call (2, since bulk's share of that bucket is 2).
    assert apns.granted == 10
    assert (await controller.acquire("apns", "bulk", 100, now=T0)).wait == pytest.approx(0.2)


async def test_breaking_news_goes_ahead_of_bulk_traffic(redis):
    controller = RateController(settings=settings())
    # Bulk alone may use the whole budget.
    assert (await controller.acquire("fcm", "bulk", 100, now=T0)).granted == 100
    # Urgent pushes arrive; bulk keeps polling at least as eagerly as they do.
    next_at: dict[Lane, float] = {"bulk": T0, "high": T0}
    got = {"bulk": 0, "high": 0}
    while min(next_at.values()) < T0 + 20:
        lane = min(next_at, key=lambda name: (next_at[name], name))  # ties: bulk asks first
        grant = await controller.acquire("fcm", lane, 500, now=next_at[lane])
        got[lane] += grant.granted
        next_at[lane] += grant.wait
    # 20 s at 100/s: the urgent lane gets at least its 80%, bulk at most its 20% share.
    assert got["high"] >= 0.8 * 2000 - 50
    assert got["bulk"] <= 0.2 * 2000 + 50
    assert got["high"] + got["bulk"] <= 2000 + 100

    # Within the demand window after the last urgent request bulk is still held to its share…
    held = await controller.acquire("fcm", "bulk", 100, now=T0 + 21)
    assert held.granted <= 20
    # …after it, bulk has the whole budget again.
    assert (await controller.acquire("fcm", "bulk", 100, now=T0 + 25)).granted == 100


async def test_bulk_waits_entirely_when_its_share_is_zero(redis):
    controller = RateController(settings=settings(pacing_bulk_share=0.0))
    assert (await controller.acquire("fcm", "high", 10, now=T0)).granted == 10
    blocked = await controller.acquire("fcm", "bulk", 10, now=T0 + 0.5)
    assert blocked.granted == 0 and blocked.wait == pytest.approx(1.5)
    assert (await controller.acquire("fcm", "bulk", 10, now=T0 + 2.0)).granted == 10


async def test_a_quota_answer_to_one_worker_pauses_every_worker(redis, emulator, emulated_settings):
    emulator.faults.update({"retry_after_s": 30})
    config = emulated_settings.model_copy(update={"pacing_max_wait_seconds": 5.0})
    inner_a, inner_b = build_providers(config, paced=False), build_providers(config, paced=False)
    worker_a = PacedProvider(inner_a["fcm"], controller=RateController(settings=config), family="fcm")
    worker_b = PacedProvider(
        inner_b["fcm"], controller=RateController(settings=config), family="fcm", sleep=clock_sleep
    )
    try:
        quota = f"quota-{uuid.uuid4().hex}"
        results = await worker_a.send(requests([quota, f"ok-{uuid.uuid4().hex}"]))
        assert results[0].outcome is Outcome.RETRY and results[0].error_code == "QUOTA_EXCEEDED"
        assert results[1].outcome is Outcome.ACCEPTED

        # The other worker holds back for the 30 s FCM asked for: nothing reaches the provider,
        # and the batch goes back to the outbox with the wait as its Retry-After.
        tokens = [f"ok-{uuid.uuid4().hex}" for _ in range(3)]
        deferred = await worker_b.send(requests(tokens, "emergency"))
        assert {(r.outcome, r.error_code) for r in deferred} == {(Outcome.RETRY, RATE_LIMITED)}
        assert all(r.retry_after is not None and 29 <= r.retry_after <= 30 for r in deferred)
        assert all(not emulator.log.find(token=token) for token in tokens)
        assert REGISTRY.get_sample_value("chuong_pacing_quota_backoffs_total", {"provider": "fcm"})

        # Waits within the worker's patience are waited out (on the service clock here).
        clock.advance(27)
        sent = await worker_b.send(requests(tokens, "emergency"))
        assert {r.outcome for r in sent} == {Outcome.ACCEPTED}
        assert all(len(emulator.log.find(token=token)) == 1 for token in tokens)
    finally:
        await close_providers(inner_a)
        await close_providers(inner_b)


async def test_quota_without_retry_after_uses_the_configured_pause(redis):
    controller = RateController(settings=settings(pacing_quota_backoff_seconds=45.0))
    assert await controller.back_off("fcm", retry_after=None, now=T0)
    assert not await controller.back_off("fcm", retry_after=10.0, now=T0)  # a shorter one changes nothing
    paused = await controller.acquire("fcm", "high", 10, now=T0 + 5)
    assert paused.granted == 0 and paused.backing_off and paused.wait == pytest.approx(40.0)
    # The bucket restarts empty at the deadline, so the workers do not all burst at once.
    assert (await controller.acquire("fcm", "high", 10, now=T0 + 45.0)).granted == 0
    assert (await controller.acquire("fcm", "high", 10, now=T0 + 45.2)).granted == 10


class RecordingLog:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict]] = []

    def warning(self, event: str, **fields: object) -> None:
        self.lines.append((event, fields))


async def test_redis_down_fails_open_and_says_so(emulator, emulated_settings, monkeypatch):
    recording = RecordingLog()
    monkeypatch.setattr(ratecontrol, "log", recording)
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    before = REGISTRY.get_sample_value("chuong_pacing_fail_open_total", {"provider": "fcm"}) or 0.0
    controller = RateController(settings=emulated_settings, redis=dead)
    inner = build_providers(emulated_settings, paced=False)
    provider = PacedProvider(inner["fcm"], controller=controller, family="fcm")
    try:
        tokens = [f"ok-{uuid.uuid4().hex}" for _ in range(5)]
        results = await provider.send(requests(tokens))
        assert {r.outcome for r in results} == {Outcome.ACCEPTED}
        assert all(len(emulator.log.find(token=token)) == 1 for token in tokens)
        # A quota answer cannot be shared either; the delivery is still retried by the outbox.
        [quota] = await provider.send(requests([f"quota-{uuid.uuid4().hex}"]))
        assert quota.outcome is Outcome.RETRY
    finally:
        await close_providers(inner)
        await dead.aclose()
    assert [event for event, _ in recording.lines] == ["pacing_fail_open"]  # one line, not one per batch
    assert recording.lines[0][1]["provider"] == "fcm"
    after = REGISTRY.get_sample_value("chuong_pacing_fail_open_total", {"provider": "fcm"})
    assert after == before + 3  # two acquisitions and one quota report


async def test_permits_and_waits_are_counted(redis):
    def sample(name: str, lane: str) -> float:
        return REGISTRY.get_sample_value(name, {"provider": "apns", "lane": lane}) or 0.0

    granted, waits = (
        sample("chuong_pacing_permits_granted_total", "high"),
        sample("chuong_pacing_waits_total", "high"),
    )
    controller = RateController(settings=settings(apns_pace_per_second=10.0))
    await controller.acquire("apns", "high", 10, now=T0)
    await controller.acquire("apns", "high", 10, now=T0)
    assert sample("chuong_pacing_permits_granted_total", "high") == granted + 10
    assert sample("chuong_pacing_waits_total", "high") == waits + 1


async def test_registry_wraps_every_provider_when_pacing_is_on(emulated_settings):
    built = build_providers(emulated_settings)
    try:
        assert all(isinstance(provider, PacedProvider) for provider in built.values())
        assert {provider.family for provider in built.values()} == {"fcm", "apns"}  # type: ignore[attr-defined]
    finally:
        await close_providers(built)
    plain = build_providers(emulated_settings.model_copy(update={"pacing_enabled": False}))
    try:
        assert not any(isinstance(provider, PacedProvider) for provider in plain.values())
    finally:
        await close_providers(plain)


async def test_a_worker_serves_its_pacing_metrics_when_given_a_port(redis, monkeypatch):
    import socket

    import httpx

    from workers.settings import startup

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = get_settings()
    monkeypatch.setattr(settings, "worker_metrics_port", port)
    monkeypatch.setattr(settings, "log_json", False)
    ctx: dict = {}
    await startup(ctx)
    try:
        await RateController(settings=settings).acquire("fcm", "high", 5)
        async with httpx.AsyncClient() as http:
            body = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        assert 'chuong_pacing_permits_granted_total{lane="high",provider="fcm"}' in body
    finally:
        server = resources_of(ctx).metrics_server
        assert server is not None and server.port == port
        await server.close()


async def test_a_push_held_back_by_pacing_does_not_use_up_an_attempt(
    client, emulator, emulated_settings, monkeypatch
):
    """Through the whole pipeline: a quota of one message a second, no waiting allowed. One push
    goes out, the others return to the outbox as ``rate_limited`` with their attempt given back,
    and go out later."""
    monkeypatch.setattr(emulated_settings, "fcm_quota_per_minute", 60)
    monkeypatch.setattr(emulated_settings, "pacing_max_wait_seconds", 0.0)
    built = build_providers(emulated_settings, paced=True)
    ctx = arq_ctx(WorkerResources(providers=built))
    try:
        await register_devices([("fcm", f"paced-{uuid.uuid4().hex}", "vi") for _ in range(3)])
        headers = await central_sender(client)
        notification_id = await broadcast(client, headers)
        await run_workers(ctx)

        _, deliveries = await load(notification_id)
        held = [d for d in deliveries if d.status == "retrying"]
        assert len(held) == 2 and {d.error_code for d in held} == {RATE_LIMITED}
        assert {d.attempts for d in held} == {0}
        assert [d.attempts for d in deliveries if d.status == "sent"] == [1]

        for _ in range(2):
            clock.advance(2)
            await send_batch(ctx, notification_id)
        notification, deliveries = await load(notification_id)
        assert notification.status == "completed"
        assert sorted(d.attempts for d in deliveries) == [1, 1, 1]
    finally:
        await close_providers(built)
