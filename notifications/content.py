"""What a push says, as one value: ``PushContent``, written once by whoever sends (the API
request, the news workflow and its recall, tracking's notices), passed whole to
``notifications.service.create_prepared``, stored in the notification's row and read back
whole by the delivery pipeline as a ``PushSpec`` (the stored notification's id, content and
expiry).

Adding a field: add it here (with a default if older callers need not set it), add a column
of the same name to ``notifications.models.Notification`` with its migration, and set it where
a sender knows it. The row maps to and from this object by field name
(``Notification.content``, ``Notification.content_values``); the payload builders
(notifications/payloads.py) read it where the field changes a push. The public API's request
and response bodies (notifications/schemas.py) are the API's contract: a field appears there
only when the API is to expose it (``NotificationCreate.content`` then carries it by name).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields

from core.clock import utcnow


@dataclass(frozen=True, slots=True)
class PushContent:
    """The parts of a notification that shape its pushes: what they say (per language, "vi"
    always present), what the app is handed, and how the providers treat them."""

    kind: str
    priority: str  # normal | high | emergency
    sensitivity: str  # public | internal | classified (D-17: only public content is pushed)
    title: dict[str, str]  # language → text
    body: dict[str, str]
    data: dict[str, str] = field(default_factory=dict)
    deep_link: str | None = None
    # Pushes with one collapse key replace each other on the phone (a recall reuses the original's).
    collapse_key: str | None = None
    ttl_seconds: int = 86400

    @property
    def sensitive(self) -> bool:
        return self.sensitivity != "public"


# The names the notification row's content columns carry (notifications/models.py).
PUSH_CONTENT_FIELDS: tuple[str, ...] = tuple(item.name for item in fields(PushContent))


@dataclass(frozen=True, slots=True)
class PushSpec:
    """A notification's push as the pipeline sends it: its id (the opaque id sensitive pushes
    carry), its content, and when it stops being worth delivering."""

    id: str
    content: PushContent
    # created_at + ttl_seconds; None for content not stored yet (a size check, a preview).
    expires_at: dt.datetime | None = None
    # Where the notification's app is published (the ``apps`` row, devices/apps.py); None: the
    # providers' configured FCM project and APNs topic.
    fcm_project_id: str | None = None
    apns_topic: str | None = None

    def ttl_left(self, now: dt.datetime | None = None) -> int:
        """The provider TTL of a request sent now: what is left of the notification's life, not
        its whole ``ttl_seconds`` (a retry an hour later must not let a phone that was offline
        show the push after the notification expired). Both FCM and APNs count from receipt."""
        ttl_seconds = self.content.ttl_seconds
        if self.expires_at is None:
            return ttl_seconds
        left = int((self.expires_at - (now or utcnow())).total_seconds())
        return max(0, min(ttl_seconds, left))
