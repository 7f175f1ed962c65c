"""Prometheus metrics of sign-in (docs/observability.md): what fails and what is refused before
it is even checked. A burst of either is what password guessing looks like (the alert
ChuongSignInFailureSpike). Labels are the audit actions and fixed reasons, never a user name."""

from __future__ import annotations

from prometheus_client import Counter

SIGNIN_FAILURES = Counter(
    "chuong_signin_failures_total",
    "Failed sign-in steps by audit action (auth.login_failed, mfa.failed, mfa.replayed, "
    "mfa.recovery_failed, ...) and reason (unknown_user, password, disabled, wrong_code, replay, "
    "network: a held role outside its allowed networks)",
    ["action", "reason"],
)
SIGNIN_THROTTLED = Counter(
    "chuong_signin_throttled_total",
    "Sign-in attempts refused unchecked: the account is throttled or locked after repeated "
    "failures (account_throttled, account_locked) or the address is over its sign-in rate limit "
    "(address_limited)",
    ["reason"],
)
