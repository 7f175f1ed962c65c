"""Allowed networks: administration and news publishing only from the agencies' networks.

The source plans require that account administration and news posting happen only over the
agencies' VPN. ``CHUONG_ALLOWED_NETWORKS`` maps a permission or a role to address ranges:

* a **permission** rule holds every request that needs the permission (``api.deps.Require``,
  the API and the console alike) to those ranges; the account may still sign in and do the rest
  from anywhere (an editor reads drafts at home, approves them only from the office);
* a **role** rule holds the account itself: its sign-ins, refreshes and every request it makes
  (or that a delegate makes on its behalf, and every request of a delegate whose own role is held).

A request under several rules must come from an address in each of them. No rule: any address.
The address is the one ``api/client_ip.py`` settled on (a trusted proxy's ``X-Forwarded-For``
hop, else the peer), so a header an untrusted caller wrote never decides. API clients have
their own allow-lists (``auth/api_clients.py``) and devices hold no staff permission: the rules
are for people.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from auth import audit
from auth.metrics import SIGNIN_FAILURES
from auth.models import User
from auth.roles import Permission, Role
from core.config import get_settings
from core.errors import Forbidden

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

NETWORK_NOT_ALLOWED = "network_not_allowed"
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def client_address(ip: str | None) -> Address | None:
    """``ip`` as an address, an IPv4-mapped IPv6 address (``::ffff:10.0.0.1``, what a dual-stack
    socket reports for an IPv4 peer) as the IPv4 address it carries; None for anything else
    (a missing peer, a test transport's name), which no rule admits."""
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _unmapped(network: Network) -> Network:
    # "::ffff:10.20.0.0/112" names IPv4 addresses: compare it with them, as client_address does.
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_IPV4_MAPPED):
        return ipaddress.IPv4Network((int(network.network_address) & 0xFFFFFFFF, network.prefixlen - 96))
    return network


@dataclass(frozen=True)
class Rule:
    key: str  # the permission or role as configured, named in refusals and audit rows
    networks: tuple[Network, ...]

    def admits(self, address: Address | None) -> bool:
        # `in` across IP versions is simply False: an IPv6 caller needs an IPv6 range listed.
        return address is not None and any(address in network for network in self.networks)


@dataclass(frozen=True)
class NetworkRules:
    by_role: dict[Role, Rule]
    by_permission: dict[Permission, Rule]

    def refusing(
        self, ip: str | None, *, roles: Iterable[Role] = (), permissions: Iterable[Permission] = ()
    ) -> Rule | None:
        """The first rule that applies and does not admit ``ip``; None if every one admits it."""
        applying = [self.by_role[role] for role in sorted(set(roles)) if role in self.by_role]
        applying += [self.by_permission[p] for p in sorted(set(permissions)) if p in self.by_permission]
        if not applying:
            return None
        address = client_address(ip)
        return next((rule for rule in applying if not rule.admits(address)), None)


def rules() -> NetworkRules:
    configured = get_settings().allowed_networks
    return _parse(tuple((key, tuple(cidrs)) for key, cidrs in sorted(configured.items())))


@lru_cache(maxsize=8)
def _parse(configured: tuple[tuple[str, tuple[str, ...]], ...]) -> NetworkRules:
    by_role: dict[Role, Rule] = {}
    by_permission: dict[Permission, Rule] = {}
    unknown: list[str] = []
    for key, cidrs in configured:
        rule = Rule(key=key, networks=tuple(_unmapped(ipaddress.ip_network(cidr)) for cidr in cidrs))
        if key in {role.value for role in Role}:
            by_role[Role(key)] = rule
        elif key in {permission.value for permission in Permission}:
            by_permission[Permission(key)] = rule
        else:
            unknown.append(key)
    if unknown:
        # A typo ("user:write") must stop the start, not leave the action open to any address.
        raise ValueError(
            f"CHUONG_ALLOWED_NETWORKS names neither a role nor a permission: {', '.join(unknown)}"
            f" (roles: {', '.join(Role)}; permissions: {', '.join(Permission)})"
        )
    return NetworkRules(by_role=by_role, by_permission=by_permission)


def check_network_rules() -> None:
    """Raise ValueError at start-up if the rules name an unknown role or permission (the ranges
    themselves were checked when the settings were read)."""
    rules()


def refusal(rule: Rule, ip: str | None) -> Forbidden:
    """The 403 of a refused address. It names the rule and the address the service saw (which
    tells a caller behind a misconfigured proxy what went wrong), never the allowed ranges."""
    return Forbidden(
        f"Not allowed from this network: {rule.key} is limited to the agencies' networks (VPN);"
        f" this request came from {ip or 'an unknown address'}",
        code=NETWORK_NOT_ALLOWED,
        details=[{"rule": rule.key, "address": ip}],
    )


async def ensure_account_may_sign_in(user: User, *, ip: str | None, action: str) -> None:
    """Refuse a sign-in (``auth.login_failed``) or a refresh (``auth.refresh_failed``) of an
    account whose role is held to networks ``ip`` is not in. Called once the password (or the
    refresh token) checked out, so a refusal tells nothing about accounts to someone who does
    not hold the credentials, and before the request writes anything, so the audit row's own
    transaction waits on no lock of the request's (docs/security.md "Bounded waits")."""
    rule = rules().refusing(ip, roles=[Role(user.role)])
    if rule is None:
        return
    SIGNIN_FAILURES.labels(action, "network").inc()
    await audit.record_detached(
        action=action,
        outcome="denied",
        actor_kind="user",
        actor_id=user.id,
        unit_id=user.unit_id,
        object_type="user",
        object_id=user.id,
        details={"reason": NETWORK_NOT_ALLOWED, "rule": rule.key},
    )
    raise refusal(rule, ip)
