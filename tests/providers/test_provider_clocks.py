"""What the providers date by a clock that Apple or Google then judge by theirs: the APNs
provider token (JWT `iat`), google-auth's service-account assertion and its token's expiry, and a
provider's Retry-After given as a date. They read the service clock (the database's, core/clock.py),
so a worker whose wall clock was stepped neither sends a token from the future nor keeps one past
its hour (issue 18, scenario 7; docs/delivery.md "Clocks"). Each test runs a process whose wall
clock really steps (libfaketime, tests/support/stepped_clock.py)."""

from __future__ import annotations

from emulator import Emulator
from emulator.app_settings import as_env
from tests.support.stepped_clock import SteppedClock, run_stepped, run_stepped_async

# Past aioapns' 30-minute renewal and Apple's hour, both ways.
STEP = 70 * 60
CLOSE = 2.0  # seconds: tokens are dated to the second


def test_the_apns_provider_token_is_dated_by_the_service_clock(database_url, tmp_path) -> None:
    readings = run_stepped(
        SteppedClock(tmp_path),
        f"""
        import jwt
        from aioapns.connection import JWTAuthorizationHeaderProvider
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        from core import clock_sync
        from notifications.providers.apns_client import ServiceClockJWT

        key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

        def issued_at(header):
            return jwt.decode(header.split(" ", 1)[1], options={{"verify_signature": False}})["iat"]

        async def main():
            assert await clock_sync.sync_once()
            ours = ServiceClockJWT(key=key, key_id="KEY1234567", team_id="TEAM123456")
            first = ours.get_header()  # minted at the true time
            step({STEP})
            theirs = JWTAuthorizationHeaderProvider(key=key, key_id="KEY1234567", team_id="TEAM123456")
            reference = await database_time()
            readings = {{
                "aioapns": issued_at(theirs.get_header()) - reference,
                "kept": ours.get_header() == first,  # 70 minutes on the wall clock, seconds in truth
            }}
            ours._minted_at -= ServiceClockJWT.TOKEN_TTL  # as if half an hour had really passed
            readings["renewed"] = issued_at(ours.get_header()) - reference
            step(-{STEP})
            ours._minted_at -= ServiceClockJWT.TOKEN_TTL
            readings["renewed_behind"] = issued_at(ours.get_header()) - await database_time()
            print(json.dumps(readings))

        asyncio.run(main())
        """,
        database_url=database_url,
    )
    assert abs(readings["aioapns"] - STEP) < CLOSE, readings  # what aioapns alone would send Apple
    assert readings["kept"], readings
    assert abs(readings["renewed"]) < CLOSE, readings
    assert abs(readings["renewed_behind"]) < CLOSE, readings


async def test_apple_accepts_the_pushes_of_a_worker_whose_clock_is_70_minutes_ahead(
    database_url, tmp_path, emulator: Emulator
) -> None:
    """End to end through the APNs provider the workers build: the emulator, like Apple, refuses
    a provider token dated more than an hour from its own (real) time, and reads
    `apns-expiration` by it."""
    token = "7" * 64
    readings = await run_stepped_async(
        SteppedClock(tmp_path),
        f"""
        from core import clock_sync
        from core.config import get_settings
        from notifications.payloads import render
        from notifications.providers.base import PushRequest
        from notifications.providers.registry import build_providers, close_providers
        from tests.providers.test_apns_prepared import SPEC

        async def main():
            assert await clock_sync.sync_once()
            step({STEP})
            built = build_providers(get_settings().model_copy(update={{"pacing_enabled": False}}))
            try:
                push = render(SPEC, "vi")
                request = PushRequest(token={token!r}, spec=SPEC, push=push)
                [result] = await built["apns:production"].send([request])
            finally:
                await close_providers(built)
            print(json.dumps({{"outcome": result.outcome.value, "error": result.error_code,
                               "ttl_left": SPEC.ttl_left(), "reference": await database_time()}}))

        asyncio.run(main())
        """,
        database_url=database_url,
        env=as_env(emulator.app_settings()),
    )
    assert (readings["outcome"], readings["error"]) == ("accepted", None), readings
    [request] = emulator.log.find(token=token)
    expiration = int(dict(request.headers or ())["apns-expiration"])
    assert abs(expiration - (readings["reference"] + readings["ttl_left"])) < CLOSE + 1, readings


def test_google_auth_dates_its_assertion_and_token_expiry_by_the_service_clock(
    database_url, tmp_path, emulator: Emulator
) -> None:
    credentials_file = emulator.app_settings()["fcm_credentials_file"]
    readings = run_stepped(
        SteppedClock(tmp_path),
        f"""
        import datetime as dt

        import google.auth._helpers
        import jwt
        from google.oauth2 import service_account

        from core import clock_sync
        from notifications.providers.fcm_app import use_service_clock

        async def main():
            assert await clock_sync.sync_once()
            use_service_clock()
            credentials = service_account.Credentials.from_service_account_file(
                {str(credentials_file)!r}, scopes=["https://www.googleapis.com/auth/firebase.messaging"]
            )
            readings = {{}}
            for offset in ({STEP}, -{STEP}):
                step(offset)
                assertion = credentials._make_authorization_grant_assertion()
                claims = jwt.decode(assertion, options={{"verify_signature": False}})
                reference = await database_time()
                # A token that (by the true time) has ten minutes left is neither expired nor stale.
                credentials.token = "token"
                credentials.expiry = dt.datetime.fromtimestamp(reference + 600, dt.UTC).replace(tzinfo=None)
                readings[offset] = {{
                    "iat": claims["iat"] - reference,
                    "now": google.auth._helpers.utcnow().replace(tzinfo=dt.UTC).timestamp() - reference,
                    "expired": credentials.expired,
                }}
            print(json.dumps(readings))

        asyncio.run(main())
        """,
        database_url=database_url,
    )
    for reading in readings.values():
        assert abs(reading["iat"]) < CLOSE, readings
        assert abs(reading["now"]) < CLOSE, readings
        assert reading["expired"] is False, readings


def test_a_retry_after_date_counts_from_the_service_clock(database_url, tmp_path) -> None:
    readings = run_stepped(
        SteppedClock(tmp_path),
        """
        from email.utils import formatdate

        from core import clock_sync
        from notifications.providers.retry_after import parse_retry_after

        async def main():
            assert await clock_sync.sync_once()
            readings = {}
            for offset in (600, -600):
                step(offset)
                # The provider's Date-style Retry-After: 30 s from the true time.
                readings[offset] = parse_retry_after(formatdate(await database_time() + 30, usegmt=True))
            print(json.dumps(readings))

        asyncio.run(main())
        """,
        database_url=database_url,
    )
    for seconds in readings.values():
        assert 28 <= seconds <= 31, readings
