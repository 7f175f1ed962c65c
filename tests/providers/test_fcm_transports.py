"""One table of cases, run against both FCM transports: what the outbox sees must not depend on
which one sends (firebase-admin's send_each_async over HTTP/2, or fcm_http1 over HTTP/1.1)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import pytest

from emulator import Emulator
from notifications.content import PushContent, PushSpec
from notifications.payloads import render
from notifications.providers.base import Outcome, PushProvider, PushRequest
from notifications.providers.registry import close_providers
from notifications.providers.retry_after import MAX_RETRY_AFTER_SECONDS
from tests.providers.conftest import TRANSPORTS, open_fcm

SPEC = PushSpec(
    id=str(uuid.UUID(int=42)),
    content=PushContent(
        kind="breaking_news",
        priority="high",
        sensitivity="public",
        title={"vi": "Tin đặc biệt quan trọng", "en": "Breaking news"},
        body={"vi": "Hội nghị Trung ương khai mạc tại Hà Nội", "en": "The plenum opens in Hanoi"},
        data={"article_id": "a-1"},
        deep_link="chuong-portal://article/a-1",
        collapse_key="a-1",
        ttl_seconds=3600,
    ),
)
SPECS = {
    "public": SPEC,
    "sensitive": replace(SPEC, content=replace(SPEC.content, sensitivity="classified", collapse_key=None)),
    "normal_priority_no_link": replace(
        SPEC, content=replace(SPEC.content, priority="normal", deep_link=None)
    ),
}


def requests_for(tokens: list[str], spec: PushSpec = SPEC, language: str = "vi") -> list[PushRequest]:
    push = render(spec, language)
    return [PushRequest(token=token, spec=spec, push=push) for token in tokens]


def unique(prefix: str = "ok") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


async def test_success_carries_the_fcm_message_name(fcm: PushProvider, emulator: Emulator) -> None:
    token = unique()

    [result] = await fcm.send(requests_for([token]))

    assert result.outcome is Outcome.ACCEPTED
    [record] = emulator.log.find(token=token)
    assert result.message_id == f"projects/chuong-emulator/messages/{record.message_id}"


@pytest.mark.parametrize(
    ("prefix", "outcome", "error_code", "retry_after"),
    [
        ("unregistered", Outcome.INVALID_TOKEN, "UNREGISTERED", None),
        ("bad", Outcome.INVALID_TOKEN, "INVALID_ARGUMENT", None),
        ("mismatch", Outcome.INVALID_TOKEN, "SENDER_ID_MISMATCH", None),
        ("quota", Outcome.RETRY, "QUOTA_EXCEEDED", 17.0),
        ("unavailable", Outcome.RETRY, "UNAVAILABLE", 17.0),
        ("internal", Outcome.RETRY, "INTERNAL", None),
        ("third-party-auth", Outcome.RETRY, "THIRD_PARTY_AUTH_ERROR", None),
        ("invalid-message", Outcome.FAILED, "INVALID_ARGUMENT", None),
    ],
)
async def test_provider_errors_are_classified_alike(
    fcm: PushProvider,
    emulator: Emulator,
    prefix: str,
    outcome: Outcome,
    error_code: str,
    retry_after: float | None,
) -> None:
    emulator.faults.update({"retry_after_s": 17})

    [result] = await fcm.send(requests_for([unique(prefix)]))

    assert (result.outcome, result.error_code, result.retry_after) == (outcome, error_code, retry_after)
    assert result.message_id is None


async def test_retry_after_is_capped(fcm: PushProvider, emulator: Emulator) -> None:
    emulator.faults.update({"retry_after_s": 86400})

    [result] = await fcm.send(requests_for([unique("quota")]))

    assert result.retry_after == MAX_RETRY_AFTER_SECONDS


async def test_results_come_back_in_request_order(fcm: PushProvider) -> None:
    prefixes = ["ok", "unregistered", "ok", "quota", "bad", "ok", "internal"] * 20

    results = await fcm.send(requests_for([unique(p) for p in prefixes]))

    expected = {
        "ok": Outcome.ACCEPTED,
        "unregistered": Outcome.INVALID_TOKEN,
        "bad": Outcome.INVALID_TOKEN,
        "quota": Outcome.RETRY,
        "internal": Outcome.RETRY,
    }
    assert [r.outcome for r in results] == [expected[p] for p in prefixes]


async def test_500_messages_in_one_call_all_succeed(fcm: PushProvider, emulator: Emulator) -> None:
    emulator.faults.update({"latency_ms": 5})
    tokens = [unique() for _ in range(500)]

    results = await fcm.send(requests_for(tokens))

    assert [r.outcome for r in results] == [Outcome.ACCEPTED] * 500
    assert len({r.message_id for r in results}) == 500
    assert emulator.log.stats.outcomes[("fcm", "ok")] == 500


async def test_dropped_connections_mid_batch_are_recovered(fcm: PushProvider, emulator: Emulator) -> None:
    emulator.faults.update({"latency_ms": 20})

    async def drop_soon() -> None:
        # Mid-batch by count, not by wall time (a loaded machine is slower): once 350 requests
        # have reached the emulator. At most 100 are in flight at a time (the stream cap), so at
        # least 250 had their answer before the drop.
        received = emulator.log.stats.outcomes[("fcm", "ok")]
        async with asyncio.timeout(10):
            while emulator.log.stats.outcomes[("fcm", "ok")] - received < 350:
                await asyncio.sleep(0.002)
        emulator.drop_connections()

    first, _ = await asyncio.gather(fcm.send(requests_for([unique() for _ in range(500)])), drop_soon())
    # In flight at the drop: answered, or a RETRY the outbox re-sends; never an exception.
    assert {r.outcome for r in first} <= {Outcome.ACCEPTED, Outcome.RETRY}
    assert sum(r.outcome is Outcome.ACCEPTED for r in first) >= 250
    # Once the emulator's HTTP/2 drain grace (1 s) is over, everything goes through again.
    await asyncio.sleep(1.2)
    second = await fcm.send(requests_for([unique() for _ in range(200)]))
    assert [r.outcome for r in second] == [Outcome.ACCEPTED] * 200


async def test_http1_reconnects_at_once_after_idle_connections_are_closed(emulator: Emulator) -> None:
    # (httpx/h2 on the stock path fails some requests sent during a GOAWAY's grace period:
    # they come back as RETRY "UNKNOWN"; HTTP/1.1 has no such window.)
    provider, built = await open_fcm(emulator, "http1")
    try:
        await provider.send(requests_for([unique() for _ in range(100)]))
        emulator.drop_connections()
        await asyncio.sleep(0.05)

        results = await provider.send(requests_for([unique() for _ in range(200)]))
    finally:
        await close_providers(built)

    assert [r.outcome for r in results] == [Outcome.ACCEPTED] * 200


async def test_http1_keeps_at_most_max_in_flight_connections(emulator: Emulator) -> None:
    emulator.faults.update({"latency_ms": 10})
    before = emulator.log.stats.connections_opened
    provider, built = await open_fcm(emulator, "http1", fcm_max_in_flight=8)
    try:
        first, second = await asyncio.gather(
            provider.send(requests_for([unique() for _ in range(150)])),
            provider.send(requests_for([unique() for _ in range(150)])),
        )
    finally:
        await close_providers(built)

    assert {r.outcome for r in first + second} == {Outcome.ACCEPTED}
    # One request per HTTP/1.1 connection at a time, connections reused (keep-alive); plus one
    # connection for the OAuth2 token (the service account's token_uri, the control port).
    assert 1 <= emulator.log.stats.connections_opened - before <= 8 + 1
    assert {r.protocol for r in emulator.log.find(provider="fcm", limit=300)} == {"http/1.1"}


@pytest.mark.parametrize("spec_name", sorted(SPECS))
@pytest.mark.parametrize("language", ["vi", "en", "ru"])
async def test_both_transports_put_the_same_message_on_the_wire(
    emulator: Emulator, spec_name: str, language: str
) -> None:
    spec = SPECS[spec_name]
    token = unique()
    payloads = {}
    for transport in TRANSPORTS:
        emulator.reset()
        provider, built = await open_fcm(emulator, transport)
        try:
            [result] = await provider.send(requests_for([token], spec, language))
        finally:
            await close_providers(built)
        assert result.outcome is Outcome.ACCEPTED
        [record] = emulator.log.find(token=token)
        payloads[transport] = record.as_json()["payload"]

    assert payloads["http1"] == payloads["firebase_admin"]
    assert payloads["http1"]["message"]["token"] == token
