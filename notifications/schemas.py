"""Request/response bodies for notifications."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from auth.roles import Role
from core.links import DeepLink
from core.schemas import RequestModel, ResponseModel
from devices.app_schemas import AppCode
from devices.locales import SUPPORTED_LANGUAGES
from notifications.content import PUSH_CONTENT_FIELDS, PushContent

Language = Literal["vi", "en", "zh", "fr", "es", "ru"]
Priority = Literal["normal", "high", "emergency"]
Sensitivity = Literal["public", "internal", "classified"]
Title = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Body = Annotated[str, StringConstraints(min_length=1, max_length=4000)]
DataKey = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")]
Topic = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")]

# FCM refuses these keys in the data block; "gcm."/"google." prefixes are reserved too.
RESERVED_DATA_KEYS = frozenset(
    {"from", "message_type", "collapse_key", "notification_id", "kind", "sensitivity"}
)
MAX_TTL_SECONDS = 28 * 24 * 3600  # FCM's maximum (4 weeks)


class Audience(RequestModel):
    """Who receives it. ``all`` targets every live device of the app; the other lists are
    unioned. A device is targeted once even when it matches several lists."""

    all: bool = False
    users: Annotated[list[uuid.UUID], Field(max_length=10_000)] = Field(default_factory=list)
    units: Annotated[list[uuid.UUID], Field(max_length=1000)] = Field(default_factory=list)
    roles: Annotated[list[Role], Field(max_length=20)] = Field(default_factory=list)
    devices: Annotated[list[uuid.UUID], Field(max_length=10_000)] = Field(default_factory=list)
    topics: Annotated[list[Topic], Field(max_length=100)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_empty(self) -> Audience:
        if not (self.all or self.users or self.units or self.roles or self.devices or self.topics):
            raise ValueError("audience is empty: set all=true or list users, units, roles, devices or topics")
        return self


class NotificationCreate(RequestModel):
    app: AppCode = Field(
        description="The app's code, as the operator registered it: `portal`, `tracking`, ..."
    )
    kind: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")]
    priority: Priority = "normal"
    sensitivity: Sensitivity = "public"
    title: dict[Language, Title]
    body: dict[Language, Body]
    data: Annotated[
        dict[DataKey, Annotated[str, StringConstraints(max_length=1024)]], Field(max_length=32)
    ] = Field(default_factory=dict)
    deep_link: DeepLink | None = Field(
        default=None,
        description="The app's own scheme (e.g. `chuong-portal://article/123`) or https to a "
        "configured host; see docs/news.md",
        examples=["chuong-tracking://tasks/012_TBKL_NQ57"],
    )
    collapse_key: (
        Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")] | None
    ) = None
    ttl_seconds: Annotated[int, Field(ge=0, le=MAX_TTL_SECONDS)] = 24 * 3600
    audience: Audience

    @field_validator("title", "body")
    @classmethod
    def _vietnamese_required(cls, value: dict[str, str]) -> dict[str, str]:
        if "vi" not in value:
            raise ValueError("the Vietnamese (vi) text is required; other languages fall back to it")
        return value

    @field_validator("data")
    @classmethod
    def _no_reserved_keys(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(k for k in value if k in RESERVED_DATA_KEYS or k.startswith(("gcm.", "google.")))
        if bad:
            raise ValueError(f"reserved data keys: {', '.join(bad)}")
        return value

    def content(self) -> PushContent:
        """The push this request describes (its app and audience say who receives it)."""
        return PushContent(**self.model_dump(include=set(PUSH_CONTENT_FIELDS)))


class NotificationOut(ResponseModel):
    id: uuid.UUID
    app: str
    kind: str
    priority: str
    sensitivity: str
    status: str
    title: dict[str, str]
    body: dict[str, str]
    data: dict[str, str]
    deep_link: str | None
    collapse_key: str | None
    ttl_seconds: int
    audience: dict[str, object]
    targeted: int
    sent: int
    invalid: int
    failed: int
    cancelled: int = 0
    pending: int = 0
    created_at: dt.datetime
    expires_at: dt.datetime
    completed_at: dt.datetime | None
    withdrawn_at: dt.datetime | None = None


assert set(SUPPORTED_LANGUAGES) == {"vi", "en", "zh", "fr", "es", "ru"}


# --- delivery stats and progress (notifications/stats.py) ---


class DeliveryCounts(ResponseModel):
    """Deliveries by state; ``targeted = sent + invalid + failed + retrying + pending + cancelled``.
    ``pending`` includes batches a worker holds right now. ``received``/``opened`` come from the
    app's receipts (inbox), not from the providers."""

    targeted: int = 0
    sent: int = 0
    invalid: int = 0
    failed: int = 0
    retrying: int = 0
    pending: int = 0
    cancelled: int = 0
    received: int = 0
    opened: int = 0


class NotificationStatsOut(ResponseModel):
    notification_id: uuid.UUID
    status: str
    priority: str
    created_at: dt.datetime
    completed_at: dt.datetime | None
    totals: DeliveryCounts
    by_language: dict[str, DeliveryCounts]
    by_platform: dict[str, DeliveryCounts]
    first_request_at: dt.datetime | None
    last_request_at: dt.datetime | None
    # Relative to created_at: how long until the first and the latest provider request.
    seconds_to_first_request: float | None
    seconds_to_last_request: float | None


class NotificationProgress(ResponseModel):
    """A cheap snapshot (the notification's counters and receipt counts) for live progress."""

    notification_id: uuid.UUID
    status: str
    finished: bool
    targeted: int
    sent: int
    invalid: int
    failed: int
    cancelled: int
    pending: int
    received: int
    opened: int
    seconds_to_first_request: float | None
    seconds_to_last_request: float | None


class NotificationDetailOut(NotificationOut):
    """``GET /v1/notifications/{id}``: the counters plus the readers' receipts (issue 4)."""

    received: int = 0
    opened: int = 0
