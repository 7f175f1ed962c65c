"""A push's content is one value (notifications/content.py) that the notification row stores
column by column under the same names: a field added there needs its column and nothing in
between."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import inspect

from notifications.content import PUSH_CONTENT_FIELDS, PushContent
from notifications.models import Notification
from notifications.schemas import NotificationCreate

CONTENT = PushContent(
    kind="breaking_news",
    priority="high",
    sensitivity="internal",
    title={"vi": "Tin", "en": "News"},
    body={"vi": "Nội dung", "en": "Text"},
    data={"article_id": "a-1"},
    deep_link="chuong-portal://article/a-1",
    collapse_key="a-1",
    ttl_seconds=3600,
)


def test_every_content_field_is_a_notification_column_of_the_same_name():
    columns = set(inspect(Notification).columns.keys())
    assert set(PUSH_CONTENT_FIELDS) <= columns, set(PUSH_CONTENT_FIELDS) - columns


def test_the_row_gives_back_the_content_it_was_written_with():
    expires_at = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    row = Notification(id=uuid.uuid4(), expires_at=expires_at, **Notification.content_values(CONTENT))

    assert row.content == CONTENT
    spec = row.push_spec()
    assert (spec.id, spec.content, spec.expires_at) == (str(row.id), CONTENT, expires_at)


def test_the_api_request_carries_the_content_whole():
    body = NotificationCreate.model_validate(
        {
            "app": "portal",
            "audience": {"all": True},
            **{name: getattr(CONTENT, name) for name in PUSH_CONTENT_FIELDS},
        }
    )

    assert body.content() == CONTENT
