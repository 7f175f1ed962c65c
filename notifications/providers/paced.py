"""A provider that asks the shared rate controller for permits before each provider call, and
tells it about quota answers so that every worker slows down, not just this one.

Permits come in slices (a grant may be smaller than the batch); each granted slice goes to the
inner provider at once while the next is being acquired, so pacing adds one Redis round trip
per slice and no idle gap. A batch that would wait longer than ``pacing_max_wait_seconds`` in
total hands the rest back to the outbox as a retry (``rate_limited`` with Retry-After), so a
long quota back-off frees the worker instead of holding its job and its lease.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from prometheus_client import Counter

from notifications.cancellation import stopped
from notifications.providers.base import STOPPED, Outcome, PushProvider, PushRequest, SendResult
from notifications.ratecontrol import Family, Lane, RateController, lane_of

QUOTA_CODE = "QUOTA_EXCEEDED"  # FCM's project quota (fcm.classify); APNs' 429 is per device
RATE_LIMITED = "rate_limited"

DEFERRED = Counter(
    "chuong_pacing_deferred_total",
    "Messages handed back to the outbox because the shared budget had no permits in time",
    ["provider", "lane"],
)


class PacedProvider:
    def __init__(
        self,
        inner: PushProvider,
        *,
        controller: RateController,
        family: Family,
        max_wait: float | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.controller = controller
        self.family = family
        self.max_wait = controller.settings.pacing_max_wait_seconds if max_wait is None else max_wait
        self._sleep = sleep  # tests pass one that moves core.clock instead of sleeping

    async def send(self, requests: Sequence[PushRequest]) -> list[SendResult]:
        results: list[SendResult | None] = [None] * len(requests)
        # A batch is one notification, so one lane; grouping keeps mixed batches correct anyway,
        # urgent ones first.
        lanes: dict[Lane, list[int]] = {}
        for index, request in enumerate(requests):
            lanes.setdefault(lane_of(request.spec.content.priority), []).append(index)
        for lane in sorted(lanes, key=lambda name: name != "high"):
            await self._send_lane(requests, lanes[lane], lane, results)
        assert all(result is not None for result in results)
        return results  # type: ignore[return-value]  # every slot is filled above

    async def _send_lane(
        self,
        requests: Sequence[PushRequest],
        indexes: list[int],
        lane: Lane,
        results: list[SendResult | None],
    ) -> None:
        in_flight: list[asyncio.Task[None]] = []
        position = 0
        waited = 0.0
        try:
            while position < len(indexes):
                if stopped(requests[indexes[position]].spec.id):
                    # Cancelled while this batch waited for permits: the rest never starts.
                    for index in indexes[position:]:
                        results[index] = STOPPED
                    break
                grant = await self.controller.acquire(self.family, lane, len(indexes) - position)
                if grant.granted:
                    chunk = indexes[position : position + grant.granted]
                    position += len(chunk)
                    in_flight.append(asyncio.create_task(self._send_chunk(requests, chunk, results)))
                    continue
                if waited + grant.wait > self.max_wait:
                    rest = indexes[position:]
                    deferred = SendResult(
                        Outcome.RETRY, error_code=RATE_LIMITED, retry_after=grant.wait, attempted=False
                    )
                    for index in rest:
                        results[index] = deferred
                    DEFERRED.labels(self.family, lane).inc(len(rest))
                    break
                await self._sleep(grant.wait)
                waited += grant.wait
        finally:
            if in_flight:
                await asyncio.gather(*in_flight)

    async def _send_chunk(
        self, requests: Sequence[PushRequest], chunk: list[int], results: list[SendResult | None]
    ) -> None:
        sent = await self.inner.send([requests[index] for index in chunk])
        quota_waits = [
            r.retry_after for r in sent if r.outcome is Outcome.RETRY and r.error_code == QUOTA_CODE
        ]
        if quota_waits:
            known = [seconds for seconds in quota_waits if seconds is not None]
            await self.controller.back_off(self.family, retry_after=max(known) if known else None)
        for index, result in zip(chunk, sent, strict=True):
            results[index] = result

    async def close(self) -> None:
        await self.inner.close()
