"""Request/response bodies of the apps (issue 19 item 6), and the app code every body carries."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from core.schemas import RequestModel, ResponseModel
from devices.locales import DEFAULT_LANGUAGE

# What ``devices.app`` and ``notifications.app`` hold. Checked against the ``apps`` table by the
# services (devices/apps.py); the shape alone is checked here, so an over-long or odd code is a
# 422 before any query.
AppCode = Annotated[str, StringConstraints(min_length=2, max_length=16, pattern=r"^[a-z][a-z0-9-]{1,15}$")]
AppPlatform = Literal["android", "ios"]
AppLanguage = Literal["vi", "en", "zh", "fr", "es", "ru"]
# A Google Cloud project id: 6–30 lower-case letters, digits and hyphens.
FcmProjectId = Annotated[
    str, StringConstraints(min_length=6, max_length=30, pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
]
# An iOS bundle id (the apns-topic header): reverse-DNS, letters, digits, '-' and '.'.
ApnsTopic = Annotated[
    str, StringConstraints(min_length=3, max_length=155, pattern=r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
]
ALL_PLATFORMS: tuple[AppPlatform, ...] = ("android", "ios")
ALL_LANGUAGES: tuple[AppLanguage, ...] = ("vi", "en", "zh", "fr", "es", "ru")
AppName = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]


def _languages(value: list[AppLanguage] | None) -> list[AppLanguage] | None:
    if value is None:
        return None
    if DEFAULT_LANGUAGE not in value:
        raise ValueError("vi is required: every push falls back to Vietnamese (D-02)")
    return sorted(set(value), key=ALL_LANGUAGES.index)


def _platforms(value: list[AppPlatform] | None) -> list[AppPlatform] | None:
    return None if value is None else sorted(set(value))


class AppCreate(RequestModel):
    code: AppCode
    name: AppName
    platforms: Annotated[list[AppPlatform], Field(min_length=1, max_length=2)] = Field(
        default_factory=lambda: list(ALL_PLATFORMS)
    )
    fcm_project_id: FcmProjectId | None = Field(default=None, description="null: the configured project")
    apns_topic: ApnsTopic | None = Field(default=None, description="null: CHUONG_APNS_TOPIC")
    languages: Annotated[list[AppLanguage], Field(min_length=1, max_length=6)] = Field(
        default_factory=lambda: list(ALL_LANGUAGES)
    )
    anonymous_devices: bool = Field(default=False, description="devices may register without an account")

    _check_languages = field_validator("languages")(_languages)
    _check_platforms = field_validator("platforms")(_platforms)


class AppUpdate(RequestModel):
    """Only the fields sent change; ``fcm_project_id``/``apns_topic`` null → back to the default."""

    name: AppName | None = None
    enabled: bool | None = None
    platforms: Annotated[list[AppPlatform], Field(min_length=1, max_length=2)] | None = None
    fcm_project_id: FcmProjectId | None = None
    apns_topic: ApnsTopic | None = None
    languages: Annotated[list[AppLanguage], Field(min_length=1, max_length=6)] | None = None
    anonymous_devices: bool | None = None

    _check_languages = field_validator("languages")(_languages)
    _check_platforms = field_validator("platforms")(_platforms)


class AppOut(ResponseModel):
    code: str
    name: str
    enabled: bool
    platforms: list[str]
    fcm_project_id: str | None
    apns_topic: str | None
    languages: list[str]
    anonymous_devices: bool
    created_at: dt.datetime
    updated_at: dt.datetime
