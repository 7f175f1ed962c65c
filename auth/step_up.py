"""The step-up rule of sensitive actions, checked by the use case itself (docs/security.md
"Sensitive actions and their doors"): whichever door calls it (API route, console form, CLI), a
sensitive action runs only for a person whose session verified a TOTP code in the last
``step_up_max_age_seconds``. The doors check it too, earlier, to answer before any work; this is
the check that cannot be forgotten by a new door."""

from __future__ import annotations

from auth.mfa import step_up_fresh
from auth.principal import Principal
from core.db import utcnow
from core.errors import Forbidden

STEP_UP_MESSAGE = (
    "Verify a fresh second factor (POST /v1/auth/mfa/verify, or a passkey: "
    "POST /v1/auth/passkeys/assertion) and retry"
)


def require_fresh_step_up(principal: Principal) -> None:
    """403 ``step_up_required`` unless a person with a freshly verified session acts (API clients
    and device credentials have no second factor and never pass)."""
    if principal.actor is None or not step_up_fresh(principal.session, now=utcnow()):
        raise Forbidden(STEP_UP_MESSAGE, code="step_up_required")
