"""Send one claimed batch through the providers, grouped by provider (and APNs environment),
each push carrying its reader's unread count as the badge.

The unread count is the inbox's (inbox/badges.py), and inbox depends on notifications, never the
reverse: the send job hands the pipeline a ``BadgeSource`` (workers/delivery_jobs.py passes
``inbox.badges.unread_badges``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import get_settings
from core.db import autocommitted, utcnow
from core.logging import get_logger
from notifications.content import PushSpec
from notifications.outbox import ClaimedDelivery
from notifications.payloads import RenderedPush, render, with_badge
from notifications.providers.base import Outcome, PushProvider, PushRequest, SendResult

log = get_logger(__name__)


class BadgeSource(Protocol):
    """Device id → the badge of a push of ``notification_id`` to it, for a whole batch of
    devices; devices it has no badge for are left out."""

    async def __call__(
        self,
        session: AsyncSession,
        *,
        notification_id: uuid.UUID,
        device_ids: Sequence[uuid.UUID],
        now: dt.datetime,
    ) -> dict[uuid.UUID, int]: ...


def provider_key(delivery: ClaimedDelivery) -> str:
    return key_of(delivery.provider, delivery.apns_environment)


def key_of(provider: str, apns_environment: str | None) -> str:
    """``provider_key`` of a delivery to ``provider`` (and for APNs, ``apns_environment``)."""
    if provider == "apns":
        return f"apns:{apns_environment or 'production'}"
    return provider


async def send_claimed(
    spec: PushSpec,
    claimed: Sequence[ClaimedDelivery],
    providers: Mapping[str, PushProvider],
    *,
    badges: Mapping[uuid.UUID, int],
    visible_generic_alert: bool = True,
) -> list[tuple[ClaimedDelivery, SendResult]]:
    """``badges``: device id → badge (``batch_badges``), worked out beforehand: the send pipeline
    does it while the previous chunk is on the wire."""
    results: list[tuple[ClaimedDelivery, SendResult]] = []
    # One rendering per language and badge value: the FCM transports encode each distinct push
    # once per batch, and the cap keeps the distinct badge values few.
    plain: dict[str, RenderedPush] = {}
    rendered: dict[tuple[str, int | None], RenderedPush] = {}
    groups: dict[str, list[tuple[ClaimedDelivery, PushRequest]]] = {}
    for delivery in claimed:
        if delivery.token is None:
            # Unregistered or invalidated after the fan-out: nothing to send to.
            results.append((delivery, SendResult(Outcome.INVALID_TOKEN, error_code="device_retired")))
            continue
        badge = badges.get(delivery.device_id)
        push = rendered.get((delivery.language, badge))
        if push is None:
            base = plain.get(delivery.language)
            if base is None:
                base = plain[delivery.language] = render(
                    spec, delivery.language, visible_generic_alert=visible_generic_alert
                )
            push = rendered[(delivery.language, badge)] = base if badge is None else with_badge(base, badge)
        request = PushRequest(
            token=delivery.token, spec=spec, push=push, apns_environment=delivery.apns_environment
        )
        groups.setdefault(provider_key(delivery), []).append((delivery, request))

    async def run(
        key: str, items: list[tuple[ClaimedDelivery, PushRequest]]
    ) -> list[tuple[ClaimedDelivery, SendResult]]:
        provider = providers.get(key)
        if provider is None:
            failure = SendResult(Outcome.FAILED, error_code=f"no_provider:{key}")
            return [(delivery, failure) for delivery, _ in items]
        try:
            sent = await provider.send([request for _, request in items])
        except Exception as exc:
            # A provider answers per request; one that raises instead (a defect, or a client
            # library's state it did not expect) must not fail the chunk: the send job would
            # end, the answers of the other provider's requests would be lost and sent again
            # when the lease ran out, and again at each lease while it keeps raising. As a
            # retry of its own requests it is written, counted and ends at the attempt limit.
            log.exception("provider_send_raised", provider=key, requests=len(items), error=type(exc).__name__)
            failure = SendResult(Outcome.RETRY, error_code=f"error:{type(exc).__name__}"[:64])
            return [(delivery, failure) for delivery, _ in items]
        return list(zip([delivery for delivery, _ in items], sent, strict=True))

    for group in await asyncio.gather(*(run(key, items) for key, items in groups.items())):
        results.extend(group)
    return results


async def batch_badges(
    spec: PushSpec, claimed: Sequence[ClaimedDelivery], source: BadgeSource
) -> dict[uuid.UUID, int]:
    """Device id → badge, for the whole batch in a few queries (``source``). The badge is a
    nicety: if the database cannot answer, the pushes go out without one rather than late."""
    device_ids = [delivery.device_id for delivery in claimed if delivery.token is not None]
    if not device_ids or not get_settings().push_badges:
        return {}
    try:
        # Reads only: no BEGIN and COMMIT round trips (each one waits behind a busy worker's
        # other work, and a first page's badges are on the way to its first request).
        async with autocommitted() as session:
            return await source(
                session, notification_id=uuid.UUID(spec.id), device_ids=device_ids, now=utcnow()
            )
    except (SQLAlchemyError, OSError) as exc:
        log.warning("badges_unavailable", notification_id=spec.id, error=type(exc).__name__)
        return {}
