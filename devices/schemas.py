from __future__ import annotations

import datetime as dt
import re
import uuid
import zoneinfo
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, IPvAnyNetwork, StringConstraints, model_validator

from core.schemas import RequestModel, ResponseModel
from core.types import BoundedDatetime
from devices.app_schemas import AppCode
from devices.locales import normalise_locale

Platform = Literal["android", "ios"]
Provider = Literal["fcm", "apns"]
ApnsEnvironment = Literal["sandbox", "production"]
Topic = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")]
# FCM registration tokens are URL-safe base64 with ':' (≈160–200 chars); APNs tokens are hex.
Token = Annotated[str, StringConstraints(min_length=8, max_length=1024, pattern=r"^[A-Za-z0-9:_\-.]+$")]


# A region code (e.g. "ha-noi", "79"): news audiences may target provinces (D-01).
Province = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9-]*$")]
_VERSION = re.compile(r"^(\d{1,5})(?:\.(\d{1,5}))?(?:\.(\d{1,5}))?")


def version_code(version: str | None) -> int | None:
    """``2.10.3`` → a number that orders like the version (2.10 > 2.9); None if it has no
    leading ``major[.minor[.patch]]``. Pre-release suffixes are ignored."""
    match = _VERSION.match(version or "")
    if match is None:
        return None
    major, minor, patch = (int(part or 0) for part in match.groups())
    return (major * 100_000 + minor) * 100_000 + patch


def _time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("unknown time zone") from exc
    return value


class DeviceRegister(RequestModel):
    app: AppCode = Field(
        description="The app's code, as the operator registered it: `portal`, `tracking`, ..."
    )
    platform: Platform
    # iOS apps may use FCM too; by default Android → FCM and iOS → APNs.
    provider: Provider | None = None
    apns_environment: ApnsEnvironment | None = None
    token: Token
    locale: Annotated[str, StringConstraints(max_length=35), AfterValidator(normalise_locale)] = "vi"
    time_zone: Annotated[str, StringConstraints(max_length=64), AfterValidator(_time_zone)] = (
        "Asia/Ho_Chi_Minh"
    )
    app_version: Annotated[str, StringConstraints(max_length=32, pattern=r"^[0-9A-Za-z.+_-]+$")] | None = None
    topics: Annotated[list[Topic], Field(max_length=50)] = Field(default_factory=list)
    province: Province | None = None

    @model_validator(mode="after")
    def _provider_defaults(self) -> DeviceRegister:
        if self.provider is None:
            self.provider = "fcm" if self.platform == "android" else "apns"
        if self.provider == "apns":
            if self.platform != "ios":
                raise ValueError("APNs tokens belong to iOS devices")
            self.apns_environment = self.apns_environment or "production"
        elif self.apns_environment is not None:
            raise ValueError("apns_environment applies only to the apns provider")
        self.topics = sorted(set(self.topics))
        return self


class DeviceOut(ResponseModel):
    id: uuid.UUID
    app: str
    platform: str
    provider: str
    apns_environment: str | None
    locale: str
    time_zone: str
    app_version: str | None
    topics: list[str]
    province: str | None = None
    last_seen_at: dt.datetime
    created_at: dt.datetime


class DeviceRegistered(DeviceOut):
    device_credential: str | None = Field(
        default=None,
        description="Anonymous devices only: send as `Authorization: Bearer …` for this device's inbox "
        "and receipts. Returned with a new device (201); a refresh with the credential (200) returns "
        "null: keep the stored one. The token alone never returns an existing device's credential.",
    )


class NetworkRegistrationsOut(ResponseModel):
    network: str | None = Field(description="IPv4 /24 or IPv6 /64; null: registered before it was recorded")
    registrations: int
    unproven: int = Field(description="never came back with their credential (purgeable)")
    first_at: dt.datetime
    last_at: dt.datetime


class FloodPurge(RequestModel):
    network: IPvAnyNetwork = Field(description="a /24, /64 or any wider prefix (e.g. 203.0.0.0/16)")
    since: BoundedDatetime
    until: BoundedDatetime
    dry_run: bool = Field(default=False, description="only count what would be purged")

    @model_validator(mode="after")
    def _window(self) -> FloodPurge:
        if self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class FloodPurged(ResponseModel):
    network: str
    since: dt.datetime
    until: dt.datetime
    dry_run: bool
    devices: int = Field(description="anonymous devices purged (or, dry run, that would be)")
