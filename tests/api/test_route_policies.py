"""Every route declares its access policy, and the mandatory-2FA matrix holds for all of them.

The matrix is generated from the route table, so routes added by later issues are covered
without touching this file.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount

from api.deps import AccessPolicy, Authenticated, Public
from auth.principal import Restriction
from auth.roles import Role
from tests.console.support import console_sign_in
from tests.support.factories import make_account, make_unit, password_only, sign_in


@dataclass(frozen=True)
class Route:
    path: str
    methods: frozenset[str]
    dependant: Dependant


def api_routes(app) -> Iterator[Route]:
    # Recent FastAPI includes routers lazily; iter_route_contexts flattens them with prefixes.
    for context in iter_route_contexts(app.router.routes):
        if isinstance(context.original_route, APIRoute):
            assert context.path is not None and context.methods is not None
            yield Route(path=context.path, methods=frozenset(context.methods), dependant=context.dependant)


def policies(dependant: Dependant) -> list[AccessPolicy]:
    found = [dependant.call] if isinstance(dependant.call, AccessPolicy) else []
    for sub in dependant.dependencies:
        found.extend(policies(sub))
    return found


@pytest.fixture
def routes(app) -> list[Route]:
    collected = list({(tuple(sorted(r.methods)), r.path): r for r in api_routes(app)}.values())
    assert len(collected) > 20, "route discovery broke: found too few routes"
    return collected


def test_every_route_declares_an_access_policy(routes):
    missing = [
        f"{sorted(r.methods)} {r.path}" for r in routes if len({id(p) for p in policies(r.dependant)}) == 0
    ]
    assert missing == [], f"routes without an access policy: {missing}"


def _allows(route: Route, restriction: Restriction) -> bool:
    found = policies(route.dependant)
    return any(isinstance(p, Public) for p in found) or any(
        isinstance(p, Authenticated) and restriction in p.allow for p in found
    )


# The only routes a password-only session may use: completing MFA, signing out, who-am-I.
MFA_PENDING_ALLOWED = {
    "POST /v1/auth/logout",
    "GET /v1/auth/me",
    "POST /v1/auth/mfa/enrol",
    "POST /v1/auth/mfa/enrol/confirm",
    "POST /v1/auth/mfa/verify",
    "POST /v1/auth/mfa/recover",
    # A passkey completes a sign-in as a code does (auth/passkeys.py).
    "POST /v1/auth/passkeys/assertion/options",
    "POST /v1/auth/passkeys/assertion",
}


def test_restricted_sessions_reach_only_the_routes_that_lift_the_restriction(routes):
    for restriction in (
        Restriction.MFA_REQUIRED,
        Restriction.MFA_ENROLMENT_REQUIRED,
        Restriction.PASSKEY_REQUIRED,
    ):
        allowed = {
            f"{m} {r.path}"
            for r in routes
            for m in r.methods
            if _allows(r, restriction) and not any(isinstance(p, Public) for p in policies(r.dependant))
        }
        assert allowed <= MFA_PENDING_ALLOWED, allowed - MFA_PENDING_ALLOWED


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)


async def test_password_only_session_gets_403_on_every_other_route(client, routes):
    unit = await make_unit()
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=unit)
    token = (await password_only(client, admin))["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    checked = 0
    for route in routes:
        if any(isinstance(p, Public) for p in policies(route.dependant)):
            continue
        for method in route.methods - {"HEAD", "OPTIONS"}:
            if f"{method} {route.path}" in MFA_PENDING_ALLOWED:
                continue
            response = await client.request(method, _concrete(route.path), headers=headers, json={})
            assert response.status_code == 403, (
                f"{method} {route.path}: {response.status_code} {response.text}"
            )
            assert response.json()["error"]["code"] in ("mfa_required", "api_client_not_allowed"), route.path
            checked += 1
    assert checked > 15


def test_only_ending_ones_own_sessions_escapes_the_network_rules(routes):
    # A role held to the agencies' networks is held on every route except those that only take
    # power away (api/deps.py SigningOut, EndingOwnSessions). A new exception is a decision.
    free = sorted(
        f"{'/'.join(sorted(r.methods))} {r.path}"
        for r in routes
        if any(isinstance(p, Authenticated) and not p.held_to_networks for p in policies(r.dependant))
    )
    assert free == [
        "DELETE /v1/auth/sessions/{session_id}",
        "POST /v1/auth/logout",
        "POST /v1/auth/sessions/revoke-all",
    ]


# --- read-only roles (inspection committees, issue 19 item 4) -------------------------------------

SAFE = {"GET", "HEAD", "OPTIONS"}


def _own_account(route: Route) -> bool:
    return any(isinstance(p, Authenticated) and p.own_account for p in policies(route.dependant))


def console_routes(app) -> Iterator[Route]:
    """The console's routes, with their mount prefix (the console is an app mounted under the API)."""
    for mount in app.router.routes:
        if isinstance(mount, Mount) and isinstance(mount.app, FastAPI):
            for context in iter_route_contexts(mount.app.router.routes):
                if isinstance(context.original_route, APIRoute):
                    assert context.path is not None and context.methods is not None
                    yield Route(
                        path=mount.path + context.path,
                        methods=frozenset(context.methods),
                        dependant=context.dependant,
                    )


def _mutating(routes: Iterator[Route] | list[Route]) -> list[tuple[str, Route]]:
    return [
        (method, route)
        for route in routes
        for method in sorted(route.methods - SAFE)
        if not any(isinstance(p, Public) for p in policies(route.dependant)) and not _own_account(route)
    ]


async def test_an_inspector_is_refused_every_write_route_of_the_api(client, routes):
    committee = await make_unit(name="Ủy ban Kiểm tra")
    inspector = await make_account(role=Role.INSPECTOR, unit=committee)
    headers = await sign_in(client, inspector)
    mutating = _mutating(routes)
    assert len(mutating) > 40, "route discovery broke: found too few write routes"
    for method, route in mutating:
        response = await client.request(method, _concrete(route.path), headers=headers, json={})
        assert response.status_code == 403, f"{method} {route.path}: {response.status_code} {response.text}"
        error = response.json()["error"]
        assert error["code"] == "read_only_role", (method, route.path, error)
        assert set(error) == {"code", "message", "details", "request_id"}


async def test_an_inspector_is_refused_every_write_route_of_the_console(app):
    committee = await make_unit(name="Ủy ban Kiểm tra")
    inspector = await make_account(role=Role.INSPECTOR, unit=committee)
    # https: the jar sends the console's Secure cookies (as tests/console/conftest.py's client).
    transport = httpx.ASGITransport(app=app, client=("203.0.113.20", 52000))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        await _console_writes_refused(app, client, inspector)


async def _console_writes_refused(app, client, inspector) -> None:
    csrf = await console_sign_in(client, inspector)
    mutating = _mutating(list(console_routes(app)))
    assert len(mutating) > 20, "console route discovery broke"
    for method, route in mutating:
        response = await client.request(
            method, _concrete(route.path), headers={"x-csrf-token": csrf}, data={}
        )
        assert response.status_code == 403, f"{method} {route.path}: {response.status_code}"
        assert "read_only_role" in response.text, (method, route.path)


async def test_an_inspector_keeps_its_own_sign_in(client, routes):
    """The routes left to a read-only account are its own sign-in and sessions, nothing else."""
    own = {f"{m} {r.path}" for r in routes if _own_account(r) for m in r.methods - SAFE}
    assert own <= {
        "POST /v1/auth/logout",
        "POST /v1/auth/mfa/enrol",
        "POST /v1/auth/mfa/enrol/confirm",
        "POST /v1/auth/mfa/verify",
        "POST /v1/auth/mfa/recover",
        "POST /v1/auth/mfa/recovery-codes",
        "POST /v1/auth/password",
        "DELETE /v1/auth/sessions/{session_id}",
        "POST /v1/auth/sessions/revoke-all",
        "POST /v1/auth/passkeys/assertion/options",
        "POST /v1/auth/passkeys/assertion",
        "POST /v1/auth/passkeys/registration/options",
        "POST /v1/auth/passkeys/registration",
        "DELETE /v1/auth/passkeys/{passkey_id}",
    }, own
