"""Which roles must sign in with a passkey once they hold one (D-22: leaders get the strongest
factor available; admins and publishers by setting, ``CHUONG_PASSKEY_REQUIRED_ROLES``).

For such a person a TOTP code or a recovery code no longer completes a sign-in or a step-up:
a convincing phishing page can relay a code, not a passkey (the browser binds the assertion to
the real origin). Until they enrol one the console guides them to it; losing every passkey
goes through the two-admin reset (auth/mfa_reset.py)."""

from __future__ import annotations

from auth.roles import MFA_EXEMPT_ROLES, Role
from core.config import get_settings

# ``auth_sessions.mfa_method`` of a session verified by a passkey.
PASSKEY = "passkey"


def required_roles() -> frozenset[Role]:
    names = set(get_settings().passkey_required_roles)
    unknown = names - {r.value for r in Role}
    if unknown:
        # A typo in a security setting must not silently leave a role on codes alone.
        raise ValueError(f"CHUONG_PASSKEY_REQUIRED_ROLES names unknown roles: {', '.join(sorted(unknown))}")
    exempt = names & {r.value for r in MFA_EXEMPT_ROLES}
    if exempt:
        raise ValueError(
            f"CHUONG_PASSKEY_REQUIRED_ROLES names roles without a second factor: {', '.join(sorted(exempt))}"
        )
    return frozenset(Role(name) for name in names)


def passkey_required(role: Role) -> bool:
    """Must this role use its passkeys (once it has any) for sign-in and step-up?"""
    return role in required_roles()


def check_passkey_policy() -> None:
    """At start-up (cli/asgi.py): a bad setting stops the service, not the first sign-in."""
    required_roles()
