"""A gateway client that raises for one SMS (instead of answering with a result) costs that SMS
a retry, not the answers of the run's other messages."""

from __future__ import annotations

from notifications.providers.sms import SmsRequest, SmsResult
from notifications.sms import sweep
from tests.sms.helpers import admin_headers, after_window, ledger, notify, person, sink
from tests.support.factories import make_unit


async def test_one_sms_that_raises_is_a_retry_and_the_others_are_recorded_as_sent(
    client, emulator, sms_provider, sms_settings, monkeypatch
):
    # Before, the run's gather raised: the two SMS the gateway had accepted (and billed) were
    # never recorded, and their lease's end sent them again.
    unit = await make_unit()
    admin = await admin_headers(client, unit)
    readers = [await person(client, unit, signed_in=False) for _ in range(3)]
    await notify(client, admin, audience={"users": [str(reader.id) for reader in readers]})
    after_window()
    unlucky = str(readers[1].phone)
    send = sms_provider.send

    async def raises_for_one(request: SmsRequest) -> SmsResult:
        if request.to == unlucky:
            raise RuntimeError("a state the client did not expect")
        return await send(request)

    monkeypatch.setattr(sms_provider, "send", raises_for_one)
    summary = await sweep.run_once(sms_provider)
    assert summary.sent == 2
    rows = await ledger()
    assert sorted(row.status for row in rows) == ["retrying", "sent", "sent"]
    assert {row.error_code for row in rows if row.status == "retrying"} == {"error:RuntimeError"}
    assert sorted(message["to"] for message in await sink(emulator)) == sorted(
        str(reader.phone) for reader in (readers[0], readers[2])
    )
