"""The APNs provider's prepared requests (notifications/providers/apns_prepared.py) against the
emulator: the same request on the wire as aioapns' own `send_notification` builds, the HPACK
choices that make them cheap, and the aioapns internals they rely on."""

from __future__ import annotations

import re
import time

import pytest
from aioapns import NotificationRequest, PushType
from aioapns.connection import APNsBaseClientProtocol
from h2.connection import H2Connection

from emulator import Emulator
from notifications.content import PushContent, PushSpec
from notifications.payloads import apns_payload, apns_priority, render
from notifications.providers import apns_prepared
from notifications.providers.apns import ApnsProvider
from notifications.providers.base import Outcome, PushRequest
from notifications.providers.registry import build_providers, close_providers
from tests.providers.conftest import emulated

SPEC = PushSpec(
    id="00000000-0000-0000-0000-0000000000a1",
    content=PushContent(
        kind="breaking_news",
        priority="high",
        sensitivity="public",
        title={"vi": "Tin nóng: Hội nghị khai mạc", "en": "Breaking: the plenum opens"},
        body={"vi": "Sáng nay tại Hà Nội.", "en": "This morning in Hanoi."},
        data={"article_id": "a-1"},
        deep_link="chuong-portal://article/a-1",
        collapse_key="a-1",
    ),
)
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture
async def apns(emulator: Emulator):
    built = build_providers(emulated(emulator))
    provider = built["apns:production"]
    assert isinstance(provider, ApnsProvider)
    yield provider
    await close_providers(built)


def _requests(tokens: list[str], language: str = "vi") -> list[PushRequest]:
    push = render(SPEC, language)
    return [PushRequest(token=token, spec=SPEC, push=push) for token in tokens]


async def test_a_prepared_request_is_what_aioapns_sends_for_the_same_push(emulator: Emulator, apns) -> None:
    push = render(SPEC, "vi")
    [ours] = await apns.send([PushRequest(token="a" * 64, spec=SPEC, push=push)])
    theirs = await apns.client.send_notification(
        NotificationRequest(
            device_token="b" * 64,
            message=apns_payload(SPEC, push),
            time_to_live=SPEC.ttl_left(),
            priority=apns_priority(SPEC, push),
            collapse_key=SPEC.content.collapse_key,
            push_type=PushType.ALERT,
        )
    )

    assert ours.outcome is Outcome.ACCEPTED and theirs.is_successful
    [mine] = emulator.log.find(token="a" * 64)
    [reference] = emulator.log.find(token="b" * 64)
    assert mine.as_json()["payload"] == reference.as_json()["payload"]
    ours_headers, their_headers = dict(mine.headers or ()), dict(reference.headers or ())
    assert UUID.match(ours_headers.pop("apns-id")) and UUID.match(their_headers.pop("apns-id"))
    assert abs(int(ours_headers.pop("apns-expiration")) - int(their_headers.pop("apns-expiration"))) <= 2
    assert ours_headers == their_headers
    assert ours.message_id == dict(mine.headers or ())["apns-id"]


async def test_every_request_has_its_own_apns_id_and_its_own_answer(emulator: Emulator, apns) -> None:
    tokens = [f"{i:064x}" for i in range(300)] + ["unregistered-1", "bad-2"]

    results = await apns.send(_requests(tokens))

    assert [r.outcome for r in results[:300]] == [Outcome.ACCEPTED] * 300
    assert (results[300].outcome, results[300].error_code) == (Outcome.INVALID_TOKEN, "Unregistered")
    assert (results[301].outcome, results[301].error_code) == (Outcome.INVALID_TOKEN, "BadDeviceToken")
    ids = [dict(record.headers or ())["apns-id"] for record in emulator.log.find(limit=1000)]
    assert len(ids) == len(set(ids)) == 302
    assert {r.message_id for r in results[:300]} <= set(ids)


async def test_the_jwt_is_indexed_once_and_per_request_headers_never(apns) -> None:
    await apns.send(_requests([f"{i:064x}" for i in range(50)]))

    connections = apns.client.pool.connections
    assert connections
    for connection in connections:
        table = list(connection.conn.encoder.header_table.dynamic_entries)
        names = [name for name, _ in table]
        assert names.count(b"authorization") == 1
        assert b":path" not in names and b"apns-id" not in names
        fresh = type(connection.conn.encoder)()  # the connection's own would fall out of step
        assert fresh.encode([(b"x-probe", b"aaaa")]) == b"\x40\x07x-probe\x04aaaa"  # no Huffman


async def test_a_stalled_request_times_out_as_a_retry(emulator: Emulator) -> None:
    built = build_providers(emulated(emulator, apns_timeout_seconds=0.3))
    try:
        await built["apns:production"].send(_requests(["warm" + "0" * 60]))  # connection and JWT
        emulator.faults.update({"latency_ms": 2000})
        started = time.monotonic()
        [result] = await built["apns:production"].send(_requests(["1" * 64]))
        assert time.monotonic() - started < 1.5
        assert (result.outcome, result.error_code) == (Outcome.RETRY, "timeout")
    finally:
        emulator.faults.update({"latency_ms": 0})
        await close_providers(built)


def test_a_protocol_class_without_the_internals_is_refused() -> None:
    class Bare:
        pass

    with pytest.raises(apns_prepared.ClientInternalsError):
        apns_prepared.with_prepared_sends(Bare)  # type: ignore[arg-type]


def test_the_protocol_internals_the_prepared_sends_use_are_there() -> None:
    for attribute in ("APNS_SERVER", "flush", "send_notification", "on_response_received", "on_stream_ended"):
        assert hasattr(APNsBaseClientProtocol, attribute)
    wrapped = apns_prepared.with_prepared_sends(APNsBaseClientProtocol)
    assert apns_prepared.with_prepared_sends(wrapped) is wrapped  # wrapping twice changes nothing
    # ``closing`` reads h2's connection state by name; h2's refusals share one base class.
    assert H2Connection().state_machine.state.name == "IDLE"
    assert issubclass(apns_prepared.NoAvailableStreamIDError, apns_prepared.H2ProtocolError)
    assert apns_prepared.H2ProtocolError.__name__ == "ProtocolError"


async def test_a_connection_ended_by_the_server_before_its_transport_went_fails_no_chunk(
    emulator: Emulator, apns
) -> None:
    # A GOAWAY closes h2's side of a connection at once, but the pool keeps handing it out until
    # the transport is gone (``connection_lost``, a few loop turns later). A request started in
    # between used to raise h2's ProtocolError out of the provider, failing the whole chunk and
    # its send job: the answers of every other request of the chunk were lost and sent again (a
    # fault test saw it under load). Now it goes on another connection.
    [warm] = await apns.send(_requests(["warm" + "0" * 60]))
    assert warm.outcome is Outcome.ACCEPTED
    [connection] = apns._pool.connections
    connection.conn.close_connection()  # h2's state: CLOSED, as after a GOAWAY
    connection.close()  # what aioapns does on the GOAWAY: the transport starts closing
    assert connection.closing()
    results = await apns.send(_requests([f"{i:064x}" for i in range(20)]))
    assert [result.outcome for result in results] == [Outcome.ACCEPTED] * 20
    assert connection not in apns._pool.connections
    assert len(emulator.log.find(token="0" * 63 + "1")) == 1


async def test_a_request_h2_refuses_is_a_retry_not_an_error(apns, monkeypatch: pytest.MonkeyPatch) -> None:
    # The safety net: whatever state h2 refuses a request in, that request is retried later and
    # the rest of its chunk is answered.
    [warm] = await apns.send(_requests(["warm" + "0" * 60]))
    assert warm.outcome is Outcome.ACCEPTED

    async def refused(*args: object, **kwargs: object) -> None:
        raise apns_prepared.H2ProtocolError("Invalid input ConnectionInputs.SEND_HEADERS in state CLOSED")

    monkeypatch.setattr(apns_prepared, "send_prepared", refused)
    [result] = await apns.send(_requests(["1" * 64]))
    assert (result.outcome, result.error_code) == (Outcome.RETRY, "transport:ProtocolError")
