"""The push content most tests need: a short public breaking-news item in Vietnamese."""

from __future__ import annotations

from typing import Any

from notifications.content import PushContent


def breaking_news(**overrides: Any) -> PushContent:
    fields: dict[str, Any] = {
        "kind": "breaking_news",
        "priority": "high",
        "sensitivity": "public",
        "title": {"vi": "Tin"},
        "body": {"vi": "Nội dung"},
        "ttl_seconds": 3600,
        **overrides,
    }
    return PushContent(**fields)
