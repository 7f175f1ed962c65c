"""Request/response bodies of the inbox, and how an item is shown in the reader's language."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from core.i18n import language_for, translate
from core.links import safe_link
from core.schemas import RequestModel, ResponseModel
from devices.app_schemas import AppCode
from devices.locales import DEFAULT_LANGUAGE, SUPPORTED_LANGUAGES
from inbox.service import Item

# Lines of the catalogue (core/locales): the push's own generic line stands in for hidden content.
GENERIC_LINE_KEY = "push.generic_line"
WITHDRAWN_LINE_KEY = "inbox.withdrawn_line"
# The withdrawal line in every language, for the recall that replaces a story's texts with it
# (news/workflow.py).
WITHDRAWN_LINE = {language: translate(WITHDRAWN_LINE_KEY, language) for language in SUPPORTED_LANGUAGES}


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
    app: AppCode | None = None
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
        language = language_for(GENERIC_LINE_KEY, language)
        title, body, deep_link, data = translate(GENERIC_LINE_KEY, language), None, None, {}
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
        language = language_for(WITHDRAWN_LINE_KEY, language)
        title, body, deep_link, data = translate(WITHDRAWN_LINE_KEY, language), None, None, {}
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
