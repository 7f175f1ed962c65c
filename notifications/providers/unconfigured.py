"""A provider whose credentials are not configured: nothing is sent anywhere.

Outside production a missing FCM service account or APNs key is allowed (a developer may only
care about the API); pushes for it wait as retries with the code ``not_configured`` instead of
going somewhere unexpected. Production refuses to start without them (core/production.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from notifications.providers.base import Outcome, PushRequest, SendResult

NOT_CONFIGURED = "not_configured"


class UnconfiguredProvider:
    def __init__(self, name: str, *, missing: Sequence[str]) -> None:
        self.name = name
        self.missing = tuple(missing)

    async def send(self, requests: Sequence[PushRequest]) -> list[SendResult]:
        return [SendResult(Outcome.RETRY, error_code=NOT_CONFIGURED) for _ in requests]

    async def close(self) -> None:
        return None
