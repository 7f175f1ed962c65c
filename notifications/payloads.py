"""What a phone receives: the per-language content of a notification and its FCM / APNs wire
form, with the 4096-byte limit checked before anything is queued.

Privacy (D-17): ``internal`` and ``classified`` notifications never carry their title, body,
data or deep link in a push. They go out with an opaque id (the app fetches the content over
the authenticated API) and, when ``visible`` is on, a generic localised line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import orjson
from firebase_admin import messaging

from core.errors import Unprocessable
from core.i18n import translate
from core.links import safe_link
from devices.locales import DEFAULT_LANGUAGE, SUPPORTED_LANGUAGES
from notifications.content import PushSpec

MAX_PAYLOAD_BYTES = 4096
# Badges above this are sent as this (the apps show "99+"); it also bounds the badge query.
BADGE_CAP = 99
# The visible alert of a sensitive push: the service's name and a generic line (core/locales).
TITLE_KEY = "push.title"
GENERIC_LINE_KEY = "push.generic_line"


@dataclass(frozen=True)
class RenderedPush:
    title: str | None
    body: str | None
    data: dict[str, str]
    language: str
    # The reader's unread count (inbox/badges.py), a number only whatever the sensitivity.
    badge: int | None = None


def language_for(spec: PushSpec, locale: str) -> str:
    return locale if locale in spec.content.title else DEFAULT_LANGUAGE


# Control pushes the app acts on without showing anything: a news recall's retract (same collapse
# key as the original, so the app can remove exactly that notification from the tray).
DATA_ONLY_KINDS = frozenset({"news.retract"})


def render(spec: PushSpec, language: str, *, visible_generic_alert: bool = True) -> RenderedPush:
    content = spec.content
    if content.kind in DATA_ONLY_KINDS:
        data = {**content.data, "notification_id": spec.id, "kind": content.kind}
        return RenderedPush(title=None, body=None, data=data, language=language)
    if content.sensitive:
        data = {"notification_id": spec.id, "sensitivity": content.sensitivity}
        if not visible_generic_alert:
            return RenderedPush(title=None, body=None, data=data, language=language)
        return RenderedPush(
            title=translate(TITLE_KEY, language),
            body=translate(GENERIC_LINE_KEY, language),
            data=data,
            language=language,
        )
    data = {**content.data, "notification_id": spec.id, "kind": content.kind}
    # Checked again on the way out: a row written before the link rules (issue 12), or a host
    # removed from the settings since, must not reach a phone.
    deep_link = safe_link(content.deep_link)
    if deep_link:
        data["deep_link"] = deep_link
    title = content.title.get(language) or content.title[DEFAULT_LANGUAGE]
    body = content.body.get(language) or content.body[DEFAULT_LANGUAGE]
    return RenderedPush(title=title, body=body, data=data, language=language)


def with_badge(push: RenderedPush, badge: int) -> RenderedPush:
    """The push with the app icon's badge: ``aps.badge`` on APNs, the notification count and
    ``data["badge"]`` on FCM (data values are strings there)."""
    badge = max(0, min(badge, BADGE_CAP))
    return replace(push, badge=badge, data={**push.data, "badge": str(badge)})


def _urgent(spec: PushSpec) -> bool:
    return spec.content.priority in ("high", "emergency")


def fcm_message(spec: PushSpec, push: RenderedPush, *, token: str) -> messaging.Message:
    collapse_key = spec.content.collapse_key
    notification = None
    android_notification = None
    if push.title is not None:
        notification = messaging.Notification(title=push.title, body=push.body)
        # The tag makes a later push with the same collapse key replace this one on the phone.
        android_notification = (
            messaging.AndroidNotification(tag=collapse_key, notification_count=push.badge)
            if collapse_key or push.badge is not None
            else None
        )
    return messaging.Message(
        token=token,
        notification=notification,
        data=push.data,
        android=messaging.AndroidConfig(
            priority="high" if _urgent(spec) else "normal",
            ttl=spec.ttl_left(),
            collapse_key=collapse_key,
            notification=android_notification,
        ),
    )


def apns_payload(spec: PushSpec, push: RenderedPush) -> dict[str, Any]:
    aps: dict[str, Any]
    if push.title is None:
        aps = {"content-available": 1}
    else:
        aps = {"alert": {"title": push.title, "body": push.body}, "sound": "default"}
        if spec.content.sensitive:
            aps["mutable-content"] = 1  # lets the app's extension fetch and show the real content
    if spec.content.collapse_key:
        aps["thread-id"] = spec.content.collapse_key
    if push.badge is not None:
        aps["badge"] = push.badge
    return {"aps": aps, **push.data}


def apns_priority(spec: PushSpec, push: RenderedPush) -> int:
    # Background (content-available only) pushes must use priority 5, or APNs rejects them.
    return 10 if push.title is not None and _urgent(spec) else 5


def fcm_size(message: messaging.Message) -> int:
    encoded = messaging._MessagingService.encode_message(message)
    return len(orjson.dumps({k: v for k, v in encoded.items() if k not in ("token", "topic", "condition")}))


def apns_size(payload: dict[str, Any]) -> int:
    return len(json.dumps(payload, ensure_ascii=False).encode("utf-8"))


def check_sizes(spec: PushSpec) -> dict[str, dict[str, int]]:
    """Sizes per language and provider; 422 naming the culprits when one exceeds 4096 bytes."""
    sizes: dict[str, dict[str, int]] = {}
    too_big: list[dict[str, Any]] = []
    languages = [language for language in SUPPORTED_LANGUAGES if language in spec.content.title]
    for language in languages or [DEFAULT_LANGUAGE]:
        push = with_badge(render(spec, language), BADGE_CAP)  # the largest badge
        fcm = fcm_size(fcm_message(spec, push, token="size-probe"))  # noqa: S106 (not a secret)
        apns = apns_size(apns_payload(spec, push))
        sizes[language] = {"fcm": fcm, "apns": apns}
        for provider, size in (("fcm", fcm), ("apns", apns)):
            if size > MAX_PAYLOAD_BYTES:
                too_big.append(
                    {"language": language, "provider": provider, "bytes": size, "limit": MAX_PAYLOAD_BYTES}
                )
    if too_big:
        worst = max(too_big, key=lambda item: item["bytes"])
        raise Unprocessable(
            f"Push payload too large: {worst['bytes']} bytes for {worst['language']} on {worst['provider']}, "
            f"the limit is {MAX_PAYLOAD_BYTES} bytes after JSON encoding (Vietnamese letters take 2–3 bytes)",
            code="payload_too_large",
            details=too_big,
        )
    return sizes
