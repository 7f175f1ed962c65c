"""Unit level: the bounded message record, fault decisions, FCM message validation."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from emulator.faults import FaultInjector, FaultKind, FaultSettingsError
from emulator.fcm_validation import MAX_PAYLOAD_BYTES, InvalidMessage, parse_send_body, target_of
from emulator.records import MessageLog


def _add(log: MessageLog, token: str, payload: bytes | None = b"{}") -> None:
    log.add(
        provider="fcm", token=token, status=200, outcome="ok", message_id=None, payload=payload, protocol="h2"
    )


def test_record_is_a_ring_of_max_records() -> None:
    log = MessageLog(max_records=3, max_payloads=3)
    for index in range(5):
        _add(log, f"t{index}")

    assert [record.token for record in log.find()] == ["t2", "t3", "t4"]
    assert log.stats.outcomes[("fcm", "ok")] == 5


def test_only_the_newest_max_payloads_records_keep_their_payload() -> None:
    log = MessageLog(max_records=10, max_payloads=2)
    for index in range(4):
        _add(log, f"t{index}", orjson.dumps({"i": index}))

    kept = [record.as_json()["payload"] for record in log.find()]
    assert kept == [None, None, {"i": 2}, {"i": 3}]
    assert log.find(token="t0")[0].as_json()["payload_dropped"] is True


def test_counts_only_mode_keeps_no_records() -> None:
    log = MessageLog(max_records=10, max_payloads=10, record=False)
    _add(log, "t")

    assert len(log) == 0
    assert log.stats.as_json()["fcm"] == {"received": 1, "outcomes": {"ok": 1}}


def test_find_limit_keeps_the_newest_matches() -> None:
    log = MessageLog(max_records=10, max_payloads=0)
    for index in range(5):
        _add(log, "same", orjson.dumps({"i": index}))

    assert len(log.find(token="same", limit=2)) == 2
    assert log.find(token="same")[0].payload is None


@pytest.mark.parametrize(
    ("token", "kind"),
    [
        ("unregistered-a", FaultKind.UNREGISTERED),
        ("bad-a", FaultKind.BAD_TOKEN),
        ("quota-a", FaultKind.QUOTA),
        ("unavailable-a", FaultKind.UNAVAILABLE),
        ("internal-a", FaultKind.INTERNAL),
        ("mismatch-a", FaultKind.SENDER_MISMATCH),
        ("third-party-auth-a", FaultKind.THIRD_PARTY_AUTH),
        ("ordinary", None),
        ("badge-holder", None),
    ],
)
def test_token_prefixes_choose_the_fault(token: str, kind: FaultKind | None) -> None:
    assert FaultInjector().decide(token).kind is kind


def test_slow_prefix_and_latency_add_up() -> None:
    faults = FaultInjector()
    faults.update({"latency_ms": 100, "slow_latency_ms": 250})

    decision = faults.decide("slow-1")

    assert decision.kind is None
    assert decision.delay == pytest.approx(0.35)


def test_error_rate_is_reproducible_with_a_seed() -> None:
    def run() -> list[FaultKind | None]:
        faults = FaultInjector(seed=7)
        faults.update({"error_rate": 0.3, "error_kind": "quota"})
        return [faults.decide(f"t{index}").kind for index in range(100)]

    first = run()
    assert first == run()
    assert 10 < first.count(FaultKind.QUOTA) < 50


@pytest.mark.parametrize(
    "changes", [{"error_rate": -0.1}, {"latency_ms": -1}, {"error_kind": "nope"}, {"outage": 1}, {"x": 1}]
)
def test_invalid_fault_updates_change_nothing(changes: dict[str, Any]) -> None:
    faults = FaultInjector()
    with pytest.raises(FaultSettingsError):
        faults.update(changes)
    assert faults.settings.as_json() == FaultInjector().settings.as_json()


def _body(message: dict[str, Any], **extra) -> bytes:
    return orjson.dumps({"message": message, **extra})


def test_size_limit_counts_utf8_bytes_without_the_target() -> None:
    overhead = len(orjson.dumps({"data": {"k": ""}}))
    exactly = "ệ" * ((MAX_PAYLOAD_BYTES - overhead) // 3) + "a" * ((MAX_PAYLOAD_BYTES - overhead) % 3)
    # A long token does not count against the limit.
    parse_send_body(_body({"token": "t" * 5000, "data": {"k": exactly}}))

    with pytest.raises(InvalidMessage, match="too big"):
        parse_send_body(_body({"token": "t", "data": {"k": exactly + "a"}}))


def test_ascii_escaped_body_is_measured_as_utf8() -> None:
    # json.dumps escapes "ệ" as 6 bytes; FCM counts the 3 UTF-8 bytes.
    value = "ệ" * 1300
    body = json.dumps({"message": {"token": "t", "data": {"k": value}}}).encode()
    assert len(body) > MAX_PAYLOAD_BYTES

    _, target, validate_only = parse_send_body(body)

    assert (target, validate_only) == ("t", False)


def test_fid_and_validate_only() -> None:
    _, target, validate_only = parse_send_body(_body({"fid": "f1"}, validate_only=True))

    assert (target, validate_only) == ("f1", True)


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", _body({"token": "t"}, extra=1), orjson.dumps({"message": "x"}), _body({"token": 5})],
)
def test_malformed_bodies_are_invalid(body: bytes) -> None:
    with pytest.raises(InvalidMessage):
        parse_send_body(body)


def test_target_of_is_best_effort() -> None:
    assert target_of(_body({"fid": "f", "colour": "red"})) == "f"
    assert target_of(b"garbage") == ""
