"""Send one claimed batch through the providers, grouped by provider (and APNs environment)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from notifications.outbox import ClaimedDelivery
from notifications.payloads import PushSpec, RenderedPush, render
from notifications.providers.base import Outcome, PushProvider, PushRequest, SendResult


def provider_key(delivery: ClaimedDelivery) -> str:
    if delivery.provider == "apns":
        return f"apns:{delivery.apns_environment or 'production'}"
    return delivery.provider


async def send_claimed(
    spec: PushSpec,
    claimed: Sequence[ClaimedDelivery],
    providers: Mapping[str, PushProvider],
    *,
    visible_generic_alert: bool = True,
) -> list[tuple[ClaimedDelivery, SendResult]]:
    results: list[tuple[ClaimedDelivery, SendResult]] = []
    rendered: dict[str, RenderedPush] = {}
    groups: dict[str, list[tuple[ClaimedDelivery, PushRequest]]] = {}
    for delivery in claimed:
        if delivery.token is None:
            # Unregistered or invalidated after the fan-out: nothing to send to.
            results.append((delivery, SendResult(Outcome.INVALID_TOKEN, error_code="device_retired")))
            continue
        push = rendered.get(delivery.language)
        if push is None:
            push = rendered[delivery.language] = render(
                spec, delivery.language, visible_generic_alert=visible_generic_alert
            )
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
        sent = await provider.send([request for _, request in items])
        return list(zip([delivery for delivery, _ in items], sent, strict=True))

    for group in await asyncio.gather(*(run(key, items) for key, items in groups.items())):
        results.extend(group)
    return results
