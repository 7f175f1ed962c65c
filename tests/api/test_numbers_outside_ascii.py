"""Numbers written in other scripts (issue 12 item 10, the class hunt): every place that reads a
number from text takes ASCII digits only (core/codes.py). ``str.isdigit()`` is true for "²" and
"١٢٣"; ``int("²")`` then raised (a 500) and ``int("١٢٣")`` quietly read 123."""

from __future__ import annotations

import httpx

from auth.roles import Role
from notifications.providers.retry_after import parse_retry_after
from tests.support.factories import make_account, make_unit, sign_in

OTHER_SCRIPTS = ["²", "¹²³", "١٢٣", "१२३", "１２"]


async def test_sms_ledger_cursor_in_other_scripts_is_422(client: httpx.AsyncClient):
    unit = await make_unit()
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=unit)
    headers = await sign_in(client, admin)
    assert (await client.get("/v1/sms/messages", params={"cursor": "12"}, headers=headers)).status_code == 200
    for cursor in OTHER_SCRIPTS:
        response = await client.get("/v1/sms/messages", params={"cursor": cursor}, headers=headers)
        assert response.status_code == 422, (cursor, response.text)


def test_a_providers_retry_after_in_other_digits_is_ignored():
    assert parse_retry_after("12") == 12.0
    for value in ("²", "١٢"):
        assert parse_retry_after(value) is None
