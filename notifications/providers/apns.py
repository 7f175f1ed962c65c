"""APNs through aioapns (token auth with a .p8 key), one client per APNs environment.

aioapns keeps the connections (HTTP/2, TLS, the JWT, answers matched to requests); the requests
themselves are built once per push and sent by apns_prepared.py, a few long-lived coroutines
per batch rather than a task and a `wait_for` per message."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aioapns import APNs
from aioapns.common import NotificationResult
from aioapns.exceptions import ConnectionClosed, MaxAttemptsExceeded
from aioapns.exceptions import ConnectionError as APNsConnectionError

from core.clock import reference_now
from notifications.cancellation import stopped
from notifications.providers import apns_prepared
from notifications.providers.apns_prepared import PreparedPush
from notifications.providers.base import STOPPED, Outcome, PushRequest, SendResult
from notifications.providers.latency import PROVIDER_LATENCY

# Apple's reasons, by what to do next.
INVALID_TOKEN_REASONS = frozenset(
    {"BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic", "ExpiredToken"}
)
RETRY_REASONS = frozenset({"TooManyRequests", "InternalServerError", "ServiceUnavailable", "Shutdown"})
# Refusals of the sender, not of the device: our provider token (expired, dated in Apple's future,
# missing, renewed too often) or certificate. Every push fails alike until an operator fixes the
# key or the clock, so they are retried (the breaker counts them and the provider alert fires)
# rather than failed for good: a broadcast must not be lost to a key rotated an hour early.
SENDER_REASONS = frozenset(
    {
        "ExpiredProviderToken",
        "InvalidProviderToken",
        "MissingProviderToken",
        "TooManyProviderTokenUpdates",
        "BadCertificate",
        "BadCertificateEnvironment",
        "Forbidden",
    }
)


def classify(result: NotificationResult) -> SendResult:
    if result.is_successful:
        return SendResult.accepted(result.notification_id)
    reason = result.description or f"HTTP_{result.status}"
    if reason in INVALID_TOKEN_REASONS or str(result.status) == "410":
        return SendResult(Outcome.INVALID_TOKEN, error_code=reason[:64])
    if reason in RETRY_REASONS or reason in SENDER_REASONS or str(result.status) in ("429", "500", "503"):
        return SendResult(Outcome.RETRY, error_code=reason[:64])
    return SendResult(Outcome.FAILED, error_code=reason[:64])


# Requests in flight per provider (and process), the default of `apns_max_in_flight`. Past this
# gate a request goes on the wire at once (after a connection opens, at the start): aioapns takes
# a stream on the first connection that has one free and opens another (up to
# `apns_max_connections`) when none has, so this stays within the connections' stream limits
# (a server setting; Apple's is 1,000, the emulator's 100). A request beyond the gate waits here,
# in `send`, which checks for a cancel before handing it over; inside aioapns nothing could stop
# it any more.
MAX_IN_FLIGHT = 250


class ApnsProvider:
    name = "apns"

    def __init__(
        self,
        client: APNs,
        *,
        timeout: float = 10.0,
        max_in_flight: int = MAX_IN_FLIGHT,
        environment: str = "production",
    ) -> None:
        self.client = client
        self._pool = client.pool
        apns_prepared.enable(self._pool)
        topic = self._pool.apns_topic
        if not topic:
            raise ValueError("APNs needs a topic (the app's bundle id)")
        self._topic: str = topic
        # Its provider key (dispatch.provider_key), bound once: no label lookup per request.
        self._latency = PROVIDER_LATENCY.labels(f"apns:{environment}")
        # aioapns has no per-request timeout: a stalled connection would hold the batch forever.
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self._slots = asyncio.Semaphore(max_in_flight)

    async def send(self, requests: Sequence[PushRequest]) -> list[SendResult]:
        if not requests:
            return []
        # One clock read for the batch's expirations: Apple reads `apns-expiration` by its clock,
        # so it counts from the service clock's now (core/clock.py), not this host's.
        now = int(reference_now().timestamp())
        prepared: dict[tuple[int, int], PreparedPush] = {}
        results: list[SendResult | None] = [None] * len(requests)
        pending = iter(range(len(requests)))

        async def lane() -> None:
            # A few long-lived coroutines instead of a task per message.
            for index in pending:
                request = requests[index]
                key = (id(request.spec), id(request.push))
                push = prepared.get(key)
                if push is None:
                    # The app's bundle id, else the configured one: the provider token (JWT)
                    # is the team's and serves every topic of the team.
                    topic = request.spec.apns_topic or self._topic
                    push = prepared[key] = apns_prepared.prepare(
                        request.spec, request.push, topic=topic, now=now
                    )
                async with self._slots:
                    # Checked with the slot in hand: a request still waiting for one has not
                    # started, and a cancel heard meanwhile stops it.
                    if stopped(request.spec.id):
                        results[index] = STOPPED
                        continue
                    results[index] = await self._send_one(request.token, push)

        await asyncio.gather(*(lane() for _ in range(min(len(requests), self.max_in_flight))))
        assert all(result is not None for result in results)
        return results  # type: ignore[return-value]  # every slot is filled above

    async def _send_one(self, token: str, push: PreparedPush) -> SendResult:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                result = await apns_prepared.send_prepared(self._pool, token, push)
        except TimeoutError:
            return SendResult(Outcome.RETRY, error_code="timeout")
        except (
            ConnectionError,
            OSError,
            APNsConnectionError,
            ConnectionClosed,
            MaxAttemptsExceeded,
            apns_prepared.H2ProtocolError,  # one request h2 refused must not fail its whole chunk
        ) as exc:
            return SendResult(Outcome.RETRY, error_code=f"transport:{type(exc).__name__}"[:64])
        finally:
            self._latency.observe(time.perf_counter() - started)
        return classify(result)

    async def close(self) -> None:
        pool = getattr(self.client, "pool", None)
        close = getattr(pool, "close", None)
        if close is not None:
            close()  # aioapns' pool.close() is synchronous
