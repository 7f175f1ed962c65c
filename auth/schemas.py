"""Request and response bodies of the accounts API."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated

from pydantic import AfterValidator, EmailStr, Field, StringConstraints, model_validator

from auth.roles import Permission, Role
from core.codes import FoldedName, ascii_code, ascii_digits, digit_code, fold
from core.schemas import RequestModel, ResponseModel
from core.types import BoundedDatetime

Username = Annotated[str, StringConstraints(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=255, strip_whitespace=True)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Code = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
# Codes follow the one input rule of core/codes.py: NFKC-folded ("１２３ ４５６" → "123456"), then
# ASCII only; Arabic-Indic or other scripts' digits answer 422, never reach a comparison.
TotpCode = Annotated[
    str, StringConstraints(min_length=1, max_length=32), digit_code(min_length=6, max_length=8)
]
_RECOVERY_ALPHABET = re.compile(r"[A-Za-z0-9]{8,16}")


def _recovery_code(value: str) -> str:
    code = ascii_code(value, alphabet=_RECOVERY_ALPHABET, drop="-")
    if code is None:
        raise ValueError("a recovery code is 8 letters and digits (A-Z, 2-9)")
    return code


RecoveryCodeText = Annotated[
    str, StringConstraints(min_length=1, max_length=32), AfterValidator(_recovery_code)
]


def _phone(value: str) -> str:
    digits = re.sub(r"[\s().-]", "", fold(value))  # fullwidth digits count; other scripts' do not
    if not re.fullmatch(r"\+?[0-9]{8,15}", digits):
        raise ValueError("phone must be 8–15 digits, optionally starting with +")
    return digits


def _citizen_id(value: str) -> str:
    # Vietnamese citizen ID (CCCD) has 12 digits; the older CMND has 9.
    digits = ascii_digits(value)
    if digits is None or len(digits) not in (9, 12):
        raise ValueError("citizen ID must be 9 or 12 digits")
    return digits


Phone = Annotated[str, AfterValidator(_phone)]
CitizenId = Annotated[str, AfterValidator(_citizen_id)]


# --- sign-in ---
class LoginRequest(RequestModel):
    username: Annotated[FoldedName, StringConstraints(min_length=1, max_length=64)]
    password: Password
    totp_code: TotpCode | None = None


class TokenResponse(ResponseModel):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"  # noqa: S105 (the OAuth token type)
    expires_in: int
    session_id: uuid.UUID
    restriction: str | None = Field(
        description="null when the session may use the API; otherwise what it must do first"
    )


class RefreshRequest(RequestModel):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class CodeRequest(RequestModel):
    code: TotpCode


class RecoveryRequest(RequestModel):
    recovery_code: RecoveryCodeText


class EnrolmentResponse(ResponseModel):
    secret: str
    otpauth_uri: str
    qr_svg: str


class RecoveryCodesResponse(ResponseModel):
    recovery_codes: list[str]


class ChangePasswordRequest(RequestModel):
    current_password: Password
    new_password: Password


class SessionOut(ResponseModel):
    id: uuid.UUID
    created_at: dt.datetime
    last_seen_at: dt.datetime
    expires_at: dt.datetime
    ip: str | None
    user_agent: str | None
    mfa_verified_at: dt.datetime | None
    current: bool = False


# --- units ---
class UnitCreate(RequestModel):
    parent_id: uuid.UUID
    code: Code
    name: Name
    kind: Annotated[
        str,
        StringConstraints(pattern=r"^(central|ministry|agency|province|district|commune|department|portal)$"),
    ]


class UnitUpdate(RequestModel):
    name: Name


class UnitOut(ResponseModel):
    id: uuid.UUID
    parent_id: uuid.UUID | None
    code: str
    name: str
    kind: str
    depth: int


# --- users ---
class UserCreate(RequestModel):
    username: Username
    full_name: Name
    position: Name | None = None
    unit_id: uuid.UUID
    role: Role
    email: EmailStr | None = None
    phone: Phone | None = None
    citizen_id: CitizenId | None = None
    password: Password


class UserUpdate(RequestModel):
    """Omitted fields stay as they are; ``null`` clears the optional ones."""

    full_name: Name | None = None
    position: Name | None = None
    unit_id: uuid.UUID | None = None
    role: Role | None = None
    email: EmailStr | None = None
    phone: Phone | None = None
    citizen_id: CitizenId | None = None

    @model_validator(mode="after")
    def _required_fields_not_null(self) -> UserUpdate:
        for name in ("full_name", "unit_id", "role"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class UserOut(ResponseModel):
    id: uuid.UUID
    username: str
    full_name: str
    position: str | None
    unit_id: uuid.UUID
    role: Role
    email: str | None
    phone: str | None = None
    citizen_id: str | None = None
    is_active: bool
    mfa_enrolled: bool = False
    locked: bool = False
    created_at: dt.datetime


class MeOut(UserOut):
    permissions: list[Permission]
    acting_as: uuid.UUID | None = None
    delegation_id: uuid.UUID | None = None


class ResetCredentialsRequest(RequestModel):
    new_password: Password
    # True: also ask for the two-admin MFA reset (auth/mfa_reset.py); another admin confirms it.
    reset_mfa: bool = True
    reason: Annotated[str, StringConstraints(max_length=500, strip_whitespace=True)] | None = None


# --- delegations ---
class DelegationCreate(RequestModel):
    delegate_id: uuid.UUID
    permissions: Annotated[list[Permission], Field(min_length=1, max_length=32)]
    expires_at: BoundedDatetime
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class DelegationOut(ResponseModel):
    id: uuid.UUID
    principal_id: uuid.UUID
    delegate_id: uuid.UUID
    permissions: list[str]
    reason: str | None
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
