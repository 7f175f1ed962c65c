"""The operators' live figures on the console's home (console/routes/live.py): system and unit
admins see the panel and read the JSON and the stream; anyone else sees no panel and gets 403 in
the one JSON error shape; the stream ends when the session does."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid

import pytest

from auth.roles import Role
from core import clock
from core.db import transaction
from notifications import headline
from tests.console.support import console_sign_in
from tests.notifications.conftest import register_devices
from tests.notifications.due_rows import due_notification, open_batch
from tests.support.factories import make_account, make_unit, sign_in
from workers.figures_jobs import measure_figures

SSE = {"Accept": "text/event-stream"}
SECOND = dt.timedelta(seconds=1)


def frames(body: str) -> list[tuple[str, dict]]:
    found = []
    for block in body.split("\n\n"):
        fields = dict(line.partition(": ")[::2] for line in block.splitlines())
        if "event" in fields:
            found.append((fields["event"], json.loads(fields["data"])))
    return found


async def _two_due_deliveries() -> None:
    now = clock.utcnow()
    devices = await register_devices([("fcm", f"ok-{uuid.uuid4().hex}", "vi") for _ in range(2)])
    async with transaction() as session:
        push = due_notification(priority="emergency", now=now)
        session.add(push)
        await session.flush()
        await open_batch(session, push, devices, rows=[("pending", now - 30 * SECOND)] * 2)
    await measure_figures({})


@pytest.mark.parametrize("role", [Role.SYSTEM_ADMIN, Role.UNIT_ADMIN])
async def test_admins_see_the_live_figures_on_their_home(console, role):
    await _two_due_deliveries()
    admin = await make_account(role=role, unit=await make_unit())
    await console_sign_in(console, admin)

    home = await console.get("/console/home")
    assert 'data-testid="live-panel"' in home.text and 'aria-live="polite"' in home.text
    assert 'data-testid="live-backlog">2<' in home.text

    figures = await console.get("/console/live/figures")
    assert figures.status_code == 200 and figures.headers["content-type"] == "application/json"
    body = figures.json()
    assert (body["backlog"], body["fresh"], body["oldest_due_priority"]) == (2, True, "emergency")


@pytest.mark.parametrize("role", [Role.EDITOR, Role.PUBLISHER, Role.LEADER])
async def test_others_see_no_panel_and_the_endpoints_refuse_them_in_the_error_shape(console, role):
    account = await make_account(role=role, unit=await make_unit())
    await console_sign_in(console, account)

    home = await console.get("/console/home")
    assert home.status_code == 200 and "live-panel" not in home.text and "live.js" not in home.text
    for path, headers in (("/console/live/figures", {}), ("/console/live/stream", SSE)):
        refused = await console.get(path, headers=headers)
        assert refused.status_code == 403, path
        assert refused.headers["content-type"] == "application/json"
        error = refused.json()["error"]
        assert error["code"] == "permission_denied" and set(error) == {
            "code",
            "message",
            "details",
            "request_id",
        }


async def test_without_a_session_the_endpoints_answer_401_not_a_sign_in_page(console):
    for path, headers in (("/console/live/figures", {}), ("/console/live/stream", SSE)):
        refused = await console.get(path, headers=headers)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"


async def test_a_revoked_session_ends_the_open_stream(console, client, monkeypatch):
    monkeypatch.setattr(headline, "EVERY_SECONDS", 0.1)
    monkeypatch.setattr(headline, "MAX_STREAM_SECONDS", 20.0)  # the test fails rather than hangs
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    await console_sign_in(console, admin)
    clock.advance(30)  # a fresh TOTP code for the API's sign-in (a code is good once)

    async def sign_out_everywhere() -> None:
        await asyncio.sleep(0.5)
        headers = await sign_in(client, admin)
        assert (await client.post("/v1/auth/sessions/revoke-all", headers=headers)).status_code == 204

    response, _ = await asyncio.gather(
        console.get("/console/live/stream", headers=SSE), sign_out_everywhere()
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    names = [name for name, _ in frames(response.text)]
    assert names[0] == "figures" and names.count("figures") >= 2
    assert names[-1] == "ended" and frames(response.text)[-1][1] == {"reason": "credentials_ended"}
    # The reconnection is refused.
    again = await console.get("/console/live/stream", headers=SSE)
    assert again.status_code == 401


async def test_an_operator_holds_a_bounded_number_of_live_streams(console, monkeypatch):
    # Each stream reads the figures and checks the sign-in every few seconds: one account (or a
    # script with its cookie) cannot open them without bound; closed ones give their slot back.
    from core.config import get_settings

    monkeypatch.setattr(headline, "EVERY_SECONDS", 0.1)
    # Long enough that no stream ends before all six asked, even under a parallel run's load.
    monkeypatch.setattr(headline, "MAX_STREAM_SECONDS", 4.0)
    monkeypatch.setattr(get_settings(), "console_live_streams_per_user", 2)
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    await console_sign_in(console, admin)

    async def open_stream(delay: float = 0.0):
        await asyncio.sleep(delay)
        return await console.get("/console/live/stream", headers=SSE)

    # Six at once, while none has ended: exactly two get through.
    answers = await asyncio.gather(*(open_stream() for _ in range(6)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200, 200, 429, 429, 429, 429], codes
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.json()["error"]["code"] == "too_many_streams" and refused.headers["retry-after"]
    # All ended by now: the slots are free again.
    assert (await open_stream()).status_code == 200
