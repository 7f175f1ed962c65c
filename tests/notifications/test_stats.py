"""Per-notification stats after a real pipeline run against the in-process emulator: every
figure adds up per language and per platform, receipts are joined in, and the timing of the
first and last provider requests is recorded."""

from __future__ import annotations

import uuid

import httpx

from auth.roles import Role
from core import clock
from core.db import transaction
from notifications import service as notification_service
from tests.notifications.helpers import broadcast, central_sender, run_workers
from tests.support.factories import make_account, make_unit, sign_in
from workers.delivery_jobs import fan_out

STATES = ("sent", "invalid", "failed", "retrying", "pending", "cancelled")


async def reader_device(
    client: httpx.AsyncClient, *, platform: str, token: str, locale: str
) -> dict[str, str]:
    """An anonymous portal reader's device; returns its credential headers."""
    response = await client.post(
        "/v1/devices", json={"app": "portal", "platform": platform, "token": token, "locale": locale}
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['device_credential']}"}


def fcm(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def apns(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex * 2}"


async def test_stats_add_up_per_language_and_platform(client, emulator, worker_ctx):
    # (platform, token, locale): what each device will answer is set by its token's prefix.
    plan = [
        ("android", fcm("ok"), "vi"),
        ("android", fcm("ok"), "vi"),
        ("android", fcm("ok"), "en"),
        ("android", fcm("unregistered"), "vi"),  # invalid
        ("android", fcm("invalid-message"), "en"),  # failed
        ("android", fcm("quota"), "vi"),  # retrying
        ("ios", apns(), "en"),
        ("ios", apns(), "ru"),  # no Russian text: delivered in Vietnamese
        ("ios", apns("bad-"), "en"),  # invalid
    ]
    credentials = [await reader_device(client, platform=p, token=t, locale=loc) for p, t, loc in plan]
    headers = await central_sender(client)
    notification_id = await broadcast(client, headers, priority="normal")
    await run_workers(worker_ctx)

    # Readers report: the two Vietnamese Android phones received it, one opened it; the iPhone
    # in English opened it (which implies received). Reports are idempotent.
    for index, event in [(0, "received"), (1, "opened"), (1, "opened"), (6, "opened")]:
        answer = await client.post(
            f"/v1/inbox/{notification_id}/receipts", json={"event": event}, headers=credentials[index]
        )
        assert answer.status_code == 200, answer.text

    response = await client.get(f"/v1/notifications/{notification_id}/stats", headers=headers)
    assert response.status_code == 200, response.text
    stats = response.json()
    totals = stats["totals"]
    assert {k: totals[k] for k in ("targeted", *STATES, "received", "opened")} == {
        "targeted": 9,
        "sent": 5,
        "invalid": 2,
        "failed": 1,
        "retrying": 1,
        "pending": 0,
        "cancelled": 0,
        "received": 3,
        "opened": 2,
    }
    for group in ("by_language", "by_platform"):
        parts = stats[group].values()
        for counts in parts:
            assert counts["targeted"] == sum(counts[state] for state in STATES), (group, counts)
        for field in ("targeted", *STATES, "received", "opened"):
            assert sum(counts[field] for counts in parts) == totals[field], (group, field)
    assert set(stats["by_language"]) == {"vi", "en"}
    vi, en = stats["by_language"]["vi"], stats["by_language"]["en"]
    assert (vi["targeted"], vi["sent"], vi["invalid"], vi["retrying"], vi["received"], vi["opened"]) == (
        5,
        3,
        1,
        1,
        2,
        1,
    )
    assert (en["targeted"], en["sent"], en["invalid"], en["failed"], en["opened"]) == (4, 2, 1, 1, 1)
    android, ios = stats["by_platform"]["android"], stats["by_platform"]["ios"]
    assert (android["targeted"], android["sent"], android["failed"], android["retrying"]) == (6, 3, 1, 1)
    assert (ios["targeted"], ios["sent"], ios["invalid"], ios["received"], ios["opened"]) == (3, 2, 1, 1, 1)

    first, last = stats["seconds_to_first_request"], stats["seconds_to_last_request"]
    assert first is not None and last is not None and 0 <= first <= last < 60
    assert stats["first_request_at"] is not None

    # The notification itself carries the receipt counts too (issue 4).
    detail = (await client.get(f"/v1/notifications/{notification_id}", headers=headers)).json()
    assert (detail["received"], detail["opened"], detail["sent"]) == (3, 2, 5)


async def test_a_notification_not_sent_yet_has_no_request_times(client):
    headers = await central_sender(client)
    await reader_device(client, platform="android", token=fcm("ok"), locale="vi")
    notification_id = await broadcast(client, headers)
    stats = (await client.get(f"/v1/notifications/{notification_id}/stats", headers=headers)).json()
    assert stats["totals"]["targeted"] == 0  # not fanned out yet
    assert stats["first_request_at"] is None and stats["seconds_to_last_request"] is None
    assert stats["by_language"] == {} and stats["status"] == "queued"


async def test_stats_of_another_units_notification_are_404(client):
    sender = await central_sender(client)
    notification_id = await broadcast(client, sender)
    publisher = await make_account(role=Role.PUBLISHER, unit=await make_unit())
    outsider = await sign_in(client, publisher)
    for path in (f"/v1/notifications/{notification_id}/stats", f"/v1/notifications/{uuid.uuid4()}/stats"):
        answer = await client.get(path, headers=outsider)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    # A reader's device credential is no way in either.
    device = await reader_device(client, platform="android", token=fcm("ok"), locale="vi")
    assert (await client.get(f"/v1/notifications/{notification_id}/stats", headers=device)).status_code in (
        401,
        403,
    )


async def test_cancelled_deliveries_are_counted_and_the_figures_still_add_up(client):
    headers = await central_sender(client)
    for locale in ("vi", "en", "vi"):
        await reader_device(client, platform="android", token=fcm("ok"), locale=locale)
    notification_id = await broadcast(client, headers)
    await fan_out({}, notification_id)  # deliveries written, none sent yet
    async with transaction() as session:
        cancelled = await notification_service.cancel(
            session, notification_id=uuid.UUID(notification_id), now=clock.utcnow()
        )
    assert cancelled == 3
    stats = (await client.get(f"/v1/notifications/{notification_id}/stats", headers=headers)).json()
    assert stats["status"] == "cancelled"
    assert (stats["totals"]["targeted"], stats["totals"]["cancelled"], stats["totals"]["pending"]) == (
        3,
        3,
        0,
    )
    assert stats["by_language"]["vi"]["cancelled"] == 2 and stats["by_platform"]["android"]["cancelled"] == 3
    assert stats["first_request_at"] is None  # nothing ever reached a provider
