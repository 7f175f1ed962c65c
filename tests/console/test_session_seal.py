"""The console's session cookie seal (console/security.py). Kept hand-written rather than
itsdangerous' TimestampSigner, which refuses a timestamp from the future (docs/architecture.md,
"Hand-written on purpose")."""

from __future__ import annotations

import uuid

from console.security import COOKIE_BACKSTOP_SECONDS, open_session, seal_session
from core import clock


def test_a_seal_tolerates_a_minute_of_clock_skew_between_hosts_and_no_more():
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    sealed = seal_session(user_id=user_id, session_id=session_id, token_version=3)
    clock.advance(-30)  # read on a host whose clock is 30 s behind the one that sealed it
    opened = open_session(sealed)
    assert opened is not None
    assert (opened.user_id, opened.session_id, opened.token_version) == (user_id, session_id, 3)
    clock.advance(-60)
    assert open_session(sealed) is None


def test_a_seal_expires_after_its_backstop_and_is_bound_to_its_contents():
    sealed = seal_session(user_id=uuid.uuid4(), session_id=uuid.uuid4(), token_version=1)
    payload, _, mac = sealed.rpartition(".")
    assert open_session(payload.replace(".1.", ".2.") + "." + mac) is None
    clock.advance(COOKIE_BACKSTOP_SECONDS - 5)
    assert open_session(sealed) is not None
    clock.advance(10)
    assert open_session(sealed) is None
