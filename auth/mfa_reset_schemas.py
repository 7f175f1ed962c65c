"""Request/response bodies of the two-admin MFA reset (auth/mfa_reset.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import StringConstraints

from auth.schemas import UserOut
from core.schemas import RequestModel, ResponseModel


class MfaResetRequestCreate(RequestModel):
    reason: Annotated[str, StringConstraints(max_length=500, strip_whitespace=True)] | None = None


class MfaResetRequestOut(ResponseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    requested_by_id: uuid.UUID
    reason: str | None
    requested_at: dt.datetime
    expires_at: dt.datetime
    status: Literal["pending", "confirmed", "cancelled"]
    decided_by_id: uuid.UUID | None
    decided_at: dt.datetime | None


class CredentialsResetOut(UserOut):
    """The account after its password reset, and the MFA reset request waiting for a second
    admin (``POST /v1/mfa-resets/{id}/confirm``) when ``reset_mfa`` was asked for."""

    mfa_reset_request: MfaResetRequestOut | None = None
