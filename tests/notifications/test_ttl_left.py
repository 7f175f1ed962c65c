"""A late send (a retry, a batch that waited behind a long broadcast) carries what is left of the
notification's life as the provider TTL, not its whole ttl_seconds: a phone that was offline must
not show the push after the notification expired (found in the issue 12 §3 class hunt)."""

import datetime as dt

from firebase_admin import _messaging_encoder

from core import clock
from notifications.content import PushSpec
from notifications.payloads import RenderedPush, fcm_message
from tests.support.pushes import breaking_news

PUSH = RenderedPush(title="Tin", body="Nội dung", data={}, language="vi")


def spec(expires_at: dt.datetime | None = None) -> PushSpec:
    return PushSpec(
        id="n-1",
        content=breaking_news(),
        expires_at=expires_at,
    )


def encoded_ttl(push_spec: PushSpec) -> str:
    message = fcm_message(push_spec, PUSH, token="t")
    return _messaging_encoder.MessageEncoder().default(message)["android"]["ttl"]


def test_a_send_late_in_the_notification_s_life_carries_only_what_is_left():
    now = clock.utcnow()
    late = spec(expires_at=now + dt.timedelta(seconds=600))
    assert late.ttl_left(now) == 600
    assert encoded_ttl(late) in ("600s", "599s")


def test_the_ttl_never_exceeds_ttl_seconds_nor_goes_below_zero():
    now = clock.utcnow()
    assert spec(expires_at=now + dt.timedelta(days=2)).ttl_left(now) == 3600
    assert spec(expires_at=now - dt.timedelta(seconds=5)).ttl_left(now) == 0
    assert spec().ttl_left(now) == 3600  # not stored yet (a preview): the whole life
