"""What each reader would receive: the exact FCM request body and APNs payload per reader
language, their sizes against the 4096-byte limit, and how many live devices would get each."""

from __future__ import annotations

from typing import Any

from firebase_admin import messaging
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from devices.locales import DEFAULT_LANGUAGE, SUPPORTED_LANGUAGES
from devices.models import Device
from devices.service import live_since
from news.models import NewsItem
from news.schemas import LanguagePreview, PlatformPreview, PreviewOut
from news.service import notification_audience, push_content, reader_languages
from notifications.audience import audience_filter, restriction_filter
from notifications.content import PushSpec
from notifications.payloads import (
    BADGE_CAP,
    MAX_PAYLOAD_BYTES,
    apns_payload,
    apns_size,
    fcm_message,
    fcm_size,
    render,
    with_badge,
)

TOKEN_PLACEHOLDER = "<device-token>"  # noqa: S105 (shown in place of each reader's token)


async def audience_counts(session: AsyncSession, item: NewsItem) -> dict[tuple[str, str], int]:
    """(reader language, platform) → live portal devices the item would reach today."""
    audience = notification_audience(item)
    query = (
        select(Device.locale, Device.platform, func.count())
        .where(
            Device.app == "portal",
            Device.invalidated_at.is_(None),
            Device.last_seen_at >= live_since(utcnow()),
            audience_filter(audience, sender_unit_path=None),
            restriction_filter(audience),
        )
        .group_by(Device.locale, Device.platform)
    )
    return {(row[0], row[1]): int(row[2]) for row in (await session.execute(query)).all()}


async def preview(session: AsyncSession, *, item: NewsItem) -> PreviewOut:
    # The real notification id is not known yet; a UUID of the same length keeps sizes exact.
    spec = PushSpec(id=str(item.id), content=push_content(item))
    counts = await audience_counts(session, item)
    included = set(reader_languages(item))
    languages: list[LanguagePreview] = []
    for language in SUPPORTED_LANGUAGES:
        audience = {platform: counts.get((language, platform), 0) for platform in ("android", "ios")}
        if language not in included:
            languages.append(
                LanguagePreview(
                    language=language,
                    content_language=None,
                    android=None,
                    ios=None,
                    audience={"android": 0, "ios": 0},
                )
            )
            continue
        content_language = language if language in spec.content.title else DEFAULT_LANGUAGE
        # With the largest badge a reader can have: the size the 4096-byte check counts (each
        # reader's own unread count replaces it when the push is sent).
        push = with_badge(render(spec, content_language), BADGE_CAP)
        message = fcm_message(spec, push, token=TOKEN_PLACEHOLDER)
        android_bytes = fcm_size(message)
        ios = apns_payload(spec, push)
        ios_bytes = apns_size(ios)
        languages.append(
            LanguagePreview(
                language=language,
                content_language=content_language,
                android=PlatformPreview(
                    payload={"message": _encoded(message)},
                    bytes=android_bytes,
                    fits=android_bytes <= MAX_PAYLOAD_BYTES,
                ),
                ios=PlatformPreview(payload=ios, bytes=ios_bytes, fits=ios_bytes <= MAX_PAYLOAD_BYTES),
                audience=audience,
            )
        )
    return PreviewOut(
        limit=MAX_PAYLOAD_BYTES,
        fits=all(p.fits for lang in languages for p in (lang.android, lang.ios) if p is not None),
        audience_total=sum(sum(lang.audience.values()) for lang in languages),
        languages=languages,
    )


def _encoded(message: messaging.Message) -> dict[str, Any]:
    # firebase-admin's own encoder: the exact JSON the FCM HTTP v1 API receives as "message".
    encoded: dict[str, Any] = messaging._MessagingService.encode_message(message)
    return encoded
