"""The push circuit breaker: an error-rate burst at a provider opens it and raises the alert
(log, metric, audit row, and the status route suggests degraded mode)."""

from __future__ import annotations

import uuid

from core import clock
from notifications import breaker
from notifications.outbox import ClaimedDelivery
from notifications.providers.base import Outcome, SendResult
from tests.sms.helpers import admin_headers, audit_rows, notify
from tests.support.factories import make_unit
from workers.context import WorkerResources, arq_ctx
from workers.delivery_jobs import fan_out, send_batch


def _results(provider: str, *, ok: int, errors: int) -> list[tuple[ClaimedDelivery, SendResult]]:
    def delivery() -> ClaimedDelivery:
        return ClaimedDelivery(
            id=1,
            device_id=uuid.uuid4(),
            provider=provider,
            language="vi",
            attempts=1,
            token="t",
            apns_environment=None,
        )

    return [(delivery(), SendResult.accepted("m")) for _ in range(ok)] + [
        (delivery(), SendResult(Outcome.RETRY, error_code="UNAVAILABLE")) for _ in range(errors)
    ]


async def test_breaker_opens_after_an_error_rate_burst_through_the_real_pipeline(
    client, emulator, push_providers, sms_settings
):
    unit = await make_unit()
    admin = await admin_headers(client, unit)
    devices = []
    for index in range(8):
        response = await client.post(
            "/v1/devices",
            json={"app": "portal", "platform": "android", "token": f"unavailable-{index}", "locale": "vi"},
        )
        assert response.status_code == 201, response.text
        devices.append(response.json()["id"])
    notification_id = await notify(
        client, admin, audience={"devices": devices}, priority="high", app="portal"
    )

    ctx = arq_ctx(WorkerResources(providers=push_providers))
    await fan_out(ctx, str(notification_id))
    summary = await send_batch(ctx, str(notification_id))
    assert summary["claimed"] == 8 and summary["retrying"] == 8

    [fcm] = [state for state in await breaker.all_states() if state.provider == "fcm"]
    assert (fcm.requests, fcm.errors, fcm.open) == (8, 8, True)
    opened = await audit_rows("push.breaker.opened")
    assert [(row.object_id, row.actor_kind, row.outcome) for row in opened] == [("fcm", "system", "failure")]
    metrics = (await client.get("/metrics")).text
    assert 'chuong_push_breaker_open{provider="fcm"} 1.0' in metrics
    assert 'chuong_push_breaker_alerts_total{provider="fcm"}' in metrics

    status = await client.get("/v1/sms/status", headers=admin)
    assert status.status_code == 200, status.text
    assert status.json()["degraded_mode_suggested"] is True
    assert any(item["provider"] == "fcm" and item["open"] for item in status.json()["breakers"])

    # More failures while open raise no second alert.
    assert await breaker.record_outcomes(_results("fcm", ok=0, errors=20)) == []
    assert len(await audit_rows("push.breaker.opened")) == 1


async def test_breaker_needs_enough_traffic_and_a_high_enough_rate(redis, database_url, sms_settings):
    assert await breaker.record_outcomes(_results("fcm", ok=0, errors=4)) == []  # 4 < min 5
    assert await breaker.record_outcomes(_results("apns", ok=60, errors=40)) == []  # 40 % < 50 %
    states = {state.provider: state for state in await breaker.all_states()}
    assert not states["fcm"].open and not states["apns:production"].open
    assert states["apns:production"].error_rate == 0.4
    assert await breaker.record_outcomes(_results("fcm", ok=0, errors=1)) == ["fcm"]


async def test_breaker_closes_when_the_window_shows_recovery(redis, database_url, sms_settings):
    assert await breaker.record_outcomes(_results("fcm", ok=2, errors=10)) == ["fcm"]
    clock.advance(sms_settings.push_breaker_window_seconds + 10)  # the burst slides out
    await breaker.record_outcomes(_results("fcm", ok=20, errors=1))
    assert not (await breaker.state("fcm")).open
    assert [row.action for row in await audit_rows("push.breaker")] == [
        "push.breaker.opened",
        "push.breaker.closed",
    ]


async def test_a_redis_failure_never_breaks_delivery(database_url, sms_settings, monkeypatch):
    from redis.asyncio import Redis

    from core import redis as core_redis

    monkeypatch.setattr(
        core_redis, "_client", Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    )
    assert await breaker.record_outcomes(_results("fcm", ok=0, errors=50)) == []


async def test_a_chunks_outcomes_take_one_redis_round_trip(redis, database_url, sms_settings, monkeypatch):
    """The counts and the window they are judged on go in one pipeline (one per chunk of the send
    pipeline, issue 16), for every provider of the chunk; only a change of state costs more."""
    from redis.asyncio.client import Pipeline

    executed: list[int] = []
    execute = Pipeline.execute

    async def counting(self: Pipeline, raise_on_error: bool = True) -> list[object]:
        executed.append(len(self.command_stack))
        return await execute(self, raise_on_error)

    monkeypatch.setattr(Pipeline, "execute", counting)
    mixed = _results("fcm", ok=30, errors=1) + _results("apns", ok=10, errors=0)
    assert await breaker.record_outcomes(mixed) == []
    assert len(executed) == 1, executed
    states = {state.provider: state for state in await breaker.all_states()}
    assert (states["fcm"].requests, states["fcm"].errors) == (31, 1)
    assert (states["apns:production"].requests, states["apns:production"].errors) == (10, 0)
