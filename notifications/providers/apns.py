"""APNs through aioapns (token auth with a .p8 key), one client per APNs environment."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

from aioapns import APNs, NotificationRequest, PushType
from aioapns.common import NotificationResult
from aioapns.exceptions import ConnectionClosed, MaxAttemptsExceeded
from aioapns.exceptions import ConnectionError as APNsConnectionError

from notifications.cancellation import stopped
from notifications.payloads import apns_payload, apns_priority
from notifications.providers.base import STOPPED, Outcome, PushRequest, SendResult
from notifications.providers.latency import PROVIDER_LATENCY

# Apple's reasons, by what to do next.
INVALID_TOKEN_REASONS = frozenset(
    {"BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic", "ExpiredToken"}
)
RETRY_REASONS = frozenset({"TooManyRequests", "InternalServerError", "ServiceUnavailable", "Shutdown"})


def classify(result: NotificationResult) -> SendResult:
    if result.is_successful:
        return SendResult.accepted(result.notification_id)
    reason = result.description or f"HTTP_{result.status}"
    if reason in INVALID_TOKEN_REASONS or str(result.status) == "410":
        return SendResult(Outcome.INVALID_TOKEN, error_code=reason[:64])
    if reason in RETRY_REASONS or str(result.status) in ("429", "500", "503"):
        return SendResult(Outcome.RETRY, error_code=reason[:64])
    return SendResult(Outcome.FAILED, error_code=reason[:64])


# Requests in flight per provider (and process). Past this gate a request goes on the wire at
# once (after a connection opens, at the start): aioapns takes a stream on the first connection
# that has one free, and this stays within one connection's stream limit (a server setting; the
# emulator's is 100). A request beyond the gate waits here, in ``_send_one``, which checks for a
# cancel before handing it over; inside aioapns nothing could stop it any more.
MAX_IN_FLIGHT = 100


async def _quiet(request: NotificationRequest, result: NotificationResult) -> None:
    """aioapns logs every failure at ERROR; the outbox records them instead."""


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
        # Its provider key (dispatch.provider_key), bound once: no label lookup per request.
        self._latency = PROVIDER_LATENCY.labels(f"apns:{environment}")
        # aioapns has no per-request timeout: a stalled connection would hold the batch forever.
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_in_flight)
        client.err_func = _quiet

    async def _send_one(self, request: PushRequest) -> SendResult:
        notification = NotificationRequest(
            device_token=request.token,
            message=apns_payload(request.spec, request.push),
            notification_id=str(uuid.uuid4()),
            time_to_live=request.spec.ttl_left(),
            priority=apns_priority(request.spec, request.push),
            collapse_key=request.spec.content.collapse_key,
            push_type=PushType.ALERT if request.push.title is not None else PushType.BACKGROUND,
        )
        try:
            async with self._slots:
                if stopped(request.spec.id):
                    return STOPPED
                started = time.perf_counter()
                try:
                    result = await asyncio.wait_for(self.client.send_notification(notification), self.timeout)
                finally:
                    self._latency.observe(time.perf_counter() - started)
        except TimeoutError:
            return SendResult(Outcome.RETRY, error_code="timeout")
        except (ConnectionError, OSError, APNsConnectionError, ConnectionClosed, MaxAttemptsExceeded) as exc:
            return SendResult(Outcome.RETRY, error_code=f"transport:{type(exc).__name__}"[:64])
        return classify(result)

    async def send(self, requests: Sequence[PushRequest]) -> list[SendResult]:
        return list(await asyncio.gather(*(self._send_one(r) for r in requests)))

    async def close(self) -> None:
        pool = getattr(self.client, "pool", None)
        close = getattr(pool, "close", None)
        if close is not None:
            close()  # aioapns' pool.close() is synchronous
