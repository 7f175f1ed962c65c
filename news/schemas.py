"""Request/response bodies of breaking-news items, their workflow actions and sections."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from core.links import DeepLink, HttpsLink
from core.schemas import RequestModel, ResponseModel
from core.types import BoundedDatetime
from devices.schemas import Province
from notifications.schemas import MAX_TTL_SECONDS, Language, Priority

LanguagePolicy = Literal["fallback_vi", "skip_missing"]
SectionCode = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")
]
# Titles are capped by the 4096-byte payload check (news.service), not by a character count
# that would be wrong for both Latin and CJK scripts; the cap here only bounds the request.
Title = Annotated[str, StringConstraints(min_length=1, max_length=4000)]
Body = Annotated[str, StringConstraints(min_length=1, max_length=4000)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
AppVersion = Annotated[str, StringConstraints(max_length=32, pattern=r"^[0-9]{1,5}(\.[0-9]{1,5}){0,2}$")]
CollapseKey = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


class NewsAudience(RequestModel):
    """Who gets the push: every reader of the portal app, or the followers of some sections;
    optionally narrowed to reader languages, provinces and a minimum app version."""

    all_readers: bool = False
    sections: Annotated[list[SectionCode], Field(max_length=50)] = Field(default_factory=list)
    languages: Annotated[list[Language], Field(max_length=6)] = Field(default_factory=list)
    provinces: Annotated[list[Province], Field(max_length=100)] = Field(default_factory=list)
    min_app_version: AppVersion | None = None

    @model_validator(mode="after")
    def _one_target(self) -> NewsAudience:
        if self.all_readers == bool(self.sections):
            raise ValueError("set either all_readers=true or a list of sections (not both)")
        self.sections = sorted(set(self.sections))
        self.languages = sorted(set(self.languages))
        self.provinces = sorted(set(self.provinces))
        return self


class NewsDraft(RequestModel):
    article_id: Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
    deep_link: DeepLink = Field(
        description="The app's own scheme (e.g. `chuong-portal://article/123`) or https to a "
        "configured host; see docs/news.md",
        examples=["chuong-portal://article/2026-11-22-nq57", "https://dangcongsan.vn/thoi-su/nq57.html"],
    )
    image_url: HttpsLink | None = Field(
        default=None,
        description="https to a configured host",
        examples=["https://dangcongsan.vn/img/nq57.jpg"],
    )
    title: dict[Language, Title]
    body: dict[Language, Body]
    language_policy: LanguagePolicy = "fallback_vi"
    audience: NewsAudience
    priority: Priority = "high"
    ttl_seconds: Annotated[int, Field(ge=60, le=MAX_TTL_SECONDS)] = 6 * 3600
    collapse_key: CollapseKey | None = Field(
        default=None,
        description="A correction with the same key replaces the earlier push on the phone. "
        "Defaults to `news-<article_id>`.",
    )
    send_at: BoundedDatetime | None = Field(
        default=None,
        description="Send time with a UTC offset (scheduled on approval); must be in the future.",
    )

    @model_validator(mode="after")
    def _languages(self) -> NewsDraft:
        if "vi" not in self.title or "vi" not in self.body:
            raise ValueError("the Vietnamese (vi) title and body are required")
        if set(self.title) != set(self.body):
            raise ValueError("give a title and a body for the same languages")
        return self


class TransitionIn(RequestModel):
    reason: Reason | None = None


class ReasonIn(RequestModel):
    reason: Reason


class ApproveIn(RequestModel):
    send_at: BoundedDatetime | None = Field(
        default=None, description="Overrides the draft's send time; omit both to send now."
    )
    reason: Reason | None = None


class NewsStats(ResponseModel):
    notification_status: str
    targeted: int
    sent: int
    invalid: int
    failed: int
    cancelled: int
    pending: int


class NewsOut(ResponseModel):
    id: uuid.UUID
    unit_id: uuid.UUID
    author_id: uuid.UUID
    status: str
    article_id: str
    deep_link: str
    image_url: str | None
    title: dict[str, str]
    body: dict[str, str]
    language_policy: str
    audience: dict[str, object]
    priority: str
    ttl_seconds: int
    collapse_key: str
    send_at: dt.datetime | None
    submitted_by: uuid.UUID | None
    submitted_at: dt.datetime | None
    approved_by: uuid.UUID | None
    approved_at: dt.datetime | None
    rejected_reason: str | None
    notification_id: uuid.UUID | None
    retract_notification_id: uuid.UUID | None
    released_at: dt.datetime | None
    finished_at: dt.datetime | None
    cancelled_at: dt.datetime | None
    recalled_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    stats: NewsStats | None = None


class PlatformPreview(ResponseModel):
    payload: dict[str, object] = Field(
        description="Android: the FCM HTTP v1 request body; iOS: the APNs payload"
    )
    bytes: int
    fits: bool


class LanguagePreview(ResponseModel):
    language: str = Field(description="The reader language")
    content_language: str | None = Field(description="Whose text they get; null when skipped")
    android: PlatformPreview | None
    ios: PlatformPreview | None
    audience: dict[str, int] = Field(description="Live devices per platform that would get this language")


class PreviewOut(ResponseModel):
    limit: int
    fits: bool
    audience_total: int
    languages: list[LanguagePreview]


class SectionCreate(RequestModel):
    code: SectionCode
    names: dict[Language, Annotated[str, StringConstraints(min_length=1, max_length=200)]]
    position: Annotated[int, Field(ge=0, le=10_000)] = 100

    @model_validator(mode="after")
    def _vietnamese(self) -> SectionCreate:
        if "vi" not in self.names:
            raise ValueError("the Vietnamese (vi) name is required")
        return self


class SectionUpdate(RequestModel):
    """The names replace the stored ones (Vietnamese required); ``position`` is kept if absent."""

    names: dict[Language, Annotated[str, StringConstraints(min_length=1, max_length=200)]]
    position: Annotated[int, Field(ge=0, le=10_000)] | None = None

    @model_validator(mode="after")
    def _vietnamese(self) -> SectionUpdate:
        if "vi" not in self.names:
            raise ValueError("the Vietnamese (vi) name is required")
        return self


class SectionOut(ResponseModel):
    id: uuid.UUID
    code: str
    name: str
    names: dict[str, str]
    unit_id: uuid.UUID | None
    position: int


class Following(RequestModel):
    sections: Annotated[list[SectionCode], Field(max_length=100)]


class FollowingOut(ResponseModel):
    sections: list[str]
