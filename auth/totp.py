"""TOTP (RFC 6238) helpers on top of pyotp: 30 s steps, ±1 step, and recovery codes.

Single use is enforced by the caller with an atomic conditional UPDATE on ``last_used_step``;
this module only finds *which* step a code belongs to.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets

import pyotp

from core.codes import ascii_digits, fold_code

STEP_SECONDS = 30
DIGITS = 6
WINDOW = 1  # accept the previous and the next step for clock drift
SECRET_BYTES = 20  # 160 bits, the RFC 4226 recommendation
RECOVERY_CODE_COUNT = 10


def new_secret() -> str:
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=issuer
    )


def matching_step(secret: str, code: str, *, now: dt.datetime) -> int | None:
    """The time step (counter) that ``code`` is valid for within ±WINDOW of ``now``, or None."""
    # The one input rule (core/codes.py): fullwidth digits count, other scripts' digits do not.
    # ``str.isdigit()`` would let "٠١٢٣٤٥" through and compare_digest would raise on it.
    digits = ascii_digits(code)
    if digits is None or len(digits) != DIGITS:
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = totp.timecode(now)
    found: int | None = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        # Compare every candidate (no early exit) so timing does not tell which step matched.
        if hmac.compare_digest(totp.generate_otp(step), digits) and found is None:
            found = step
    return found


def code_for(secret: str, *, at: dt.datetime) -> str:
    """The code a phone would show at ``at`` (used by tests and the CLI, never by the API)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).at(at)


def new_recovery_codes() -> list[str]:
    # 10 groups of 4+4 base32 characters: 40 bits each, typed rarely, single use, hashed at rest.
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return [
        "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(2))
        for _ in range(RECOVERY_CODE_COUNT)
    ]


def normalise_recovery_code(code: str) -> str:
    # Same rule as every code (core/codes.py): folded, without spaces and hyphens. A code left
    # with non-ASCII characters hashes to something no stored code has.
    return fold_code(code, drop="-").upper()


def hash_recovery_code(code: str) -> str:
    return hashlib.sha256(normalise_recovery_code(code).encode()).hexdigest()
