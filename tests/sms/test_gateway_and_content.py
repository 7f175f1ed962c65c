"""The HTTP gateway adapter against the emulator's sink: retries with a bound, permanent
failures, credentials; no notification content in any SMS; phone numbers encrypted at rest."""

from __future__ import annotations

import socket
import uuid

import httpx
from sqlalchemy import text

from core import clock
from core.crypto import decrypt_text
from notifications.providers.sms import SmsOutcome, SmsRequest
from notifications.providers.sms_registry import build_sms_provider
from notifications.sms import sweep
from tests.sms.helpers import TEXT, admin_headers, after_window, audit_rows, ledger, notify, person, sink
from tests.support.factories import make_unit


async def _faults(emulator, **changes) -> None:
    async with httpx.AsyncClient(base_url=emulator.control_url) as http:
        response = await http.put("/sms/faults", json=changes)
        assert response.status_code == 200, response.text


async def test_gateway_errors_are_retried_with_backoff_then_recorded_failed(client, emulator, sms_provider):
    unit = await make_unit()
    sender = await admin_headers(client, unit)
    reader = await person(client, unit, signed_in=False)
    notification_id = await notify(client, sender, audience={"users": [str(reader.id)]})
    await _faults(emulator, fail_next=100, status=503)
    after_window()

    first = await sweep.run_once(sms_provider)
    assert (first.queued, first.retrying, first.sent) == (1, 1, 0)
    [row] = await ledger(notification_id)
    assert (row.status, row.attempts, row.error_code) == ("retrying", 1, "http_503")
    assert (await sweep.run_once(sms_provider)).retrying == 0  # not due yet: backoff 30 s

    clock.advance(31)
    assert (await sweep.run_once(sms_provider)).retrying == 1
    clock.advance(61)  # second backoff: 60 s
    last = await sweep.run_once(sms_provider)
    assert last.failed == 1
    [row] = await ledger(notification_id)
    assert (row.status, row.attempts, row.error_code, row.sent_at) == ("failed", 3, "http_503", None)
    assert emulator.sms.attempts == 3  # the bound: sms_max_attempts
    clock.advance(3600)
    await sweep.run_once(sms_provider)
    assert emulator.sms.attempts == 3
    failed = await audit_rows("sms.failed")
    assert len(failed) == 1 and failed[0].details["code"] == "http_503"
    assert await sink(emulator) == []


async def test_a_retry_that_succeeds_sends_once(client, emulator, sms_provider):
    unit = await make_unit()
    sender = await admin_headers(client, unit)
    reader = await person(client, unit, signed_in=False)
    await notify(client, sender, audience={"users": [str(reader.id)]})
    await _faults(emulator, fail_next=1, status=429)
    after_window()
    assert (await sweep.run_once(sms_provider)).retrying == 1
    clock.advance(31)
    assert (await sweep.run_once(sms_provider)).sent == 1
    assert [(row.status, row.attempts) for row in await ledger()] == [("sent", 2)]
    assert len(await sink(emulator)) == 1


async def test_a_permanent_gateway_error_fails_at_once(client, emulator, sms_provider):
    unit = await make_unit()
    sender = await admin_headers(client, unit)
    reader = await person(client, unit, signed_in=False)
    await notify(client, sender, audience={"users": [str(reader.id)]})
    await _faults(emulator, fail_next=1, status=400)
    after_window()
    assert (await sweep.run_once(sms_provider)).failed == 1
    assert [(row.status, row.attempts, row.error_code) for row in await ledger()] == [
        ("failed", 1, "http_400")
    ]


async def test_the_adapter_sends_credentials_and_an_idempotency_key(emulator, sms_settings, monkeypatch):
    from pydantic import SecretStr

    monkeypatch.setattr(sms_settings, "sms_gateway_url", f"{emulator.control_url}/sms/send")
    monkeypatch.setattr(sms_settings, "sms_gateway_username", "chuong-gw")
    monkeypatch.setattr(sms_settings, "sms_gateway_password", SecretStr("s3cret"))
    provider = build_sms_provider(sms_settings)
    try:
        request = SmsRequest(to="+84901234567", text=TEXT, sender="CHUONG", reference="chuong-sms-42")
        first = await provider.send(request)
        again = await provider.send(request)  # a resend after a lost reply
    finally:
        await provider.close()
    assert provider.name == "http"
    assert first.outcome is SmsOutcome.ACCEPTED and again.message_id == first.message_id
    [message] = await sink(emulator)
    assert message["auth"] == "basic:chuong-gw" and message["reference"] == "chuong-sms-42"


async def test_an_unreachable_gateway_is_a_transient_error(sms_settings, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(sms_settings, "sms_gateway_url", f"http://127.0.0.1:{port}/send")
    provider = build_sms_provider(sms_settings)
    try:
        result = await provider.send(
            SmsRequest(to="+84901234567", text=TEXT, sender="CHUONG", reference="r-1")
        )
    finally:
        await provider.close()
    assert result.outcome is SmsOutcome.RETRY and (result.error_code or "").startswith("connection:")


async def test_a_classified_notification_sends_no_content_by_sms(client, emulator, sms_provider):
    unit = await make_unit()
    sender = await admin_headers(client, unit)
    reader = await person(client, unit)
    secret_title, secret_body = "Kế hoạch A-17 tuyệt mật", "Triển khai lực lượng tại điểm K9"
    await notify(
        client,
        sender,
        audience={"users": [str(reader.id)]},
        sensitivity="classified",
        title=secret_title,
        body=secret_body,
    )
    after_window()
    assert (await sweep.run_once(sms_provider)).sent == 1
    [message] = await sink(emulator)
    assert message["text"] == TEXT
    everything = str(message)
    for fragment in ("A-17", "K9", "tuyệt mật", "Triển khai"):
        assert fragment not in everything


async def test_phone_numbers_set_through_the_users_api_are_encrypted_at_rest(
    client, owner_engine, sms_settings
):
    unit = await make_unit()
    admin = await admin_headers(client, unit)
    reader = await person(client, unit, phone=False, signed_in=False)
    phone = "+84912345678"
    response = await client.patch(f"/v1/users/{reader.id}", json={"phone": phone}, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["phone"] == phone

    async with owner_engine.connect() as connection:
        raw = (
            await connection.execute(text("SELECT phone_enc FROM users WHERE id = :id"), {"id": reader.id})
        ).scalar_one()
    assert isinstance(raw, bytes) and phone.encode() not in raw and b"912345678" not in raw
    assert decrypt_text(raw) == phone
    # Nothing else stores it in clear either (the SMS ledger keeps user ids only).
    async with owner_engine.connect() as connection:
        columns = (
            await connection.execute(
                text(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_name = 'sms_messages' AND column_name LIKE '%phone%'"
                )
            )
        ).all()
    assert columns == []
    assert uuid.UUID(response.json()["id"]) == reader.id
