"""Request/response bodies of the inbox, and how an item is shown in the reader's language."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from core.links import safe_link
from core.schemas import RequestModel, ResponseModel
from devices.locales import DEFAULT_LANGUAGE
from inbox.service import Item
from notifications.payloads import GENERIC_LINE

App = Literal["portal", "tracking"]
WITHDRAWN_LINE = {
    "vi": "Tin này đã được thu hồi",
    "en": "This story has been withdrawn",
    "zh": "此新闻已撤回",
    "fr": "Cet article a été retiré",
    "es": "Esta noticia ha sido retirada",
    "ru": "Эта новость отозвана",
}


class InboxItemOut(ResponseModel):
    """One inbox entry. For ``internal`` and ``classified`` notifications the list shows only a
    generic line and the kind (``content_hidden``); ``GET /v1/inbox/{id}`` has the content."""

    id: uuid.UUID  # the notification's id
    app: str
    kind: str
    priority: str
    sensitivity: str
    language: str
    title: str
    body: str | None
    deep_link: str | None
    data: dict[str, str]
    content_hidden: bool
    broadcast: bool
    created_at: dt.datetime
    read: bool
    read_at: dt.datetime | None
    archived: bool
    archived_at: dt.datetime | None
    # Recalled by its sender: the content is gone and a withdrawal line shows instead.
    withdrawn: bool = False


class UnreadCount(ResponseModel):
    unread: int


class ReadAll(RequestModel):
    app: App | None = None
    up_to: uuid.UUID | None = None  # read everything up to and including this item


class ReceiptIn(RequestModel):
    event: Literal["received", "opened"]


class ReceiptOut(ResponseModel):
    notification_id: uuid.UUID
    received_at: dt.datetime | None
    opened_at: dt.datetime | None


def render(item: Item, *, language: str, full: bool) -> InboxItemOut:
    """``full`` (the item endpoint): internal items show everything; classified items carry only
    their title and body — the status line (D-17) — never data or a deep link."""
    notification = item.notification
    hidden = notification.sensitivity != "public" and not full
    if hidden:
        # The generic line exists in every language, whatever languages the content has.
        language = language if language in GENERIC_LINE else DEFAULT_LANGUAGE
        title, body, deep_link, data = GENERIC_LINE[language], None, None, {}
    else:
        language = language if language in notification.title else DEFAULT_LANGUAGE
        title = notification.title.get(language) or notification.title[DEFAULT_LANGUAGE]
        body = notification.body.get(language) or notification.body.get(DEFAULT_LANGUAGE)
        # Today's link rules, not those of the day the row was written (core/links.py).
        deep_link, data = safe_link(notification.deep_link), dict(notification.data)
        if notification.sensitivity == "classified":
            deep_link, data = None, {}
    withdrawn = notification.withdrawn_at is not None
    if withdrawn:
        language = language if language in WITHDRAWN_LINE else DEFAULT_LANGUAGE
        title, body, deep_link, data = WITHDRAWN_LINE[language], None, None, {}
    return InboxItemOut(
        id=notification.id,
        app=notification.app,
        kind=notification.kind,
        priority=notification.priority,
        sensitivity=notification.sensitivity,
        language=language,
        title=title,
        body=body,
        deep_link=deep_link,
        data=data,
        content_hidden=hidden,
        broadcast=item.entry.broadcast,
        created_at=item.entry.created_at,
        read=item.read_at is not None,
        read_at=item.read_at,
        archived=item.entry.archived_at is not None,
        archived_at=item.entry.archived_at,
        withdrawn=withdrawn,
    )
