"""Console sessions follow the same lifetime rule as the API's (issue 12 item 11): a staff
sign-in ends after 30 minutes without a click and 12 hours after it began, whatever the activity."""

from __future__ import annotations

from auth.roles import Role
from core import clock
from tests.console.support import console_sign_in
from tests.support.factories import make_account, make_unit

MINUTE = 60


async def test_an_idle_console_session_sends_the_next_click_to_sign_in_with_the_reason(console):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    await console_sign_in(console, editor)
    clock.advance(29 * MINUTE)
    assert (await console.get("/console/home")).status_code == 200
    clock.advance(31 * MINUTE)
    refused = await console.get("/console/home")
    assert refused.status_code == 303
    assert refused.headers["location"].endswith("reason=session_expired")
    page = await console.get(refused.headers["location"])
    assert 'data-testid="expired"' in page.text
    # The cookie was cleared with the session; signing in again works.
    await console_sign_in(console, editor)


async def test_a_busy_console_session_still_ends_after_12_hours(console):
    unit = await make_unit()
    publisher = await make_account(role=Role.PUBLISHER, unit=unit)
    await console_sign_in(console, publisher)
    for _ in range(71):  # a click every 10 minutes: 11 h 50 min
        clock.advance(10 * MINUTE)
        assert (await console.get("/console/home")).status_code == 200
    clock.advance(10 * MINUTE)
    refused = await console.get("/console/home")
    assert refused.status_code == 303
    assert refused.headers["location"].endswith("reason=session_expired")
