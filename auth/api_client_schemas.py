"""Request and response bodies of the API-clients API (connected systems, D-40)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import uuid
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from auth.api_clients import ApiScope
from core.schemas import RequestModel, ResponseModel

Name = Annotated[str, StringConstraints(min_length=1, max_length=255, strip_whitespace=True)]

# A week is long enough to roll a key out to any connected system; longer only widens exposure.
MAX_GRACE_SECONDS = 7 * 24 * 3600


def _cidr(value: str) -> str:
    # strict: "10.0.0.5/24" is refused rather than silently widened to the whole /24.
    try:
        network = ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        raise ValueError(f"not an IP address or CIDR network with host bits clear: {value!r}") from exc
    return str(network)


Cidr = Annotated[str, StringConstraints(max_length=64), AfterValidator(_cidr)]
Scopes = Annotated[list[ApiScope], Field(max_length=len(ApiScope))]
Allowlist = Annotated[list[Cidr], Field(max_length=100)]


class ApiClientCreate(RequestModel):
    unit_id: uuid.UUID
    name: Name
    scopes: Scopes
    ip_allowlist: Allowlist = Field(
        default_factory=list, description="CIDRs the client may call from; empty = any address"
    )


class ApiClientUpdate(RequestModel):
    name: Name | None = None
    scopes: Scopes | None = None
    ip_allowlist: Allowlist | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> ApiClientUpdate:
        if self.name is None and self.scopes is None and self.ip_allowlist is None:
            raise ValueError("give at least one of name, scopes, ip_allowlist")
        return self


class RotateRequest(RequestModel):
    grace_seconds: Annotated[int, Field(ge=0, le=MAX_GRACE_SECONDS)] = Field(
        default=24 * 3600, description="How long the previous key keeps working; 0 ends it at once"
    )


class ApiClientOut(ResponseModel):
    id: uuid.UUID
    unit_id: uuid.UUID
    name: str
    key_id: str
    scopes: list[str]
    ip_allowlist: list[str]
    status: str
    suspended_at: dt.datetime | None
    rotated_at: dt.datetime | None
    previous_key_expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    created_at: dt.datetime
    created_by_id: uuid.UUID | None


class ApiClientWithKey(ApiClientOut):
    api_key: str = Field(description="Shown only in this answer; only its hash is stored")


class ApiClientSelf(ApiClientOut):
    """What a connected system sees about its own credentials."""

    key_in_use: Literal["current", "previous"] = Field(
        description="'previous' means this key was rotated out and stops at previous_key_expires_at"
    )
