"""The per-address limit applies to every route, the anonymous ones included (issue 12, item 5).

It used to be counted while credentials were read, so routes that admit anonymous callers —
``POST /v1/devices`` without credentials, sign-in, health, the sections list, the console's
sign-in pages — never reached it. The routes are taken from the route tables (API and console),
so a route added later is covered without touching this file."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount

from api.deps import OptionalAuthenticated, Public
from auth import ratelimit
from core.config import get_settings
from tests.api.test_route_policies import policies
from tests.api_clients.helpers import client_from
from tests.console.support import csrf_from


def _anonymous(router_routes: list, prefix: str) -> Iterator[tuple[str, str]]:
    for context in iter_route_contexts(router_routes):
        if not isinstance(context.original_route, APIRoute):
            continue
        found = policies(context.dependant)
        if any(isinstance(p, Public | OptionalAuthenticated) for p in found):
            assert context.path is not None and context.methods is not None
            for method in sorted(context.methods - {"HEAD", "OPTIONS"}):
                yield method, prefix + re.sub(r"\{[^}]+\}", str(uuid.uuid4()), context.path)


def anonymous_routes(app: FastAPI) -> list[tuple[str, str]]:
    console = next(r.app for r in app.routes if isinstance(r, Mount) and r.path == "/console")
    assert isinstance(console, FastAPI)
    return [*_anonymous(app.router.routes, ""), *_anonymous(console.router.routes, "/console")]


@pytest.fixture
def tight_ip_limit(monkeypatch):
    settings = get_settings()
    monkeypatch.setattr(settings, "rate_limit_per_ip", "2/minute")
    monkeypatch.setattr(settings, "abuse_strikes", 1000)  # a rejection, not a block, is asserted


async def test_every_route_that_admits_anonymous_callers_counts_against_the_address(
    app, redis, tight_ip_limit
):
    routes = anonymous_routes(app)
    assert ("POST", "/v1/devices") in routes and ("GET", "/console/login") in routes, routes
    # A browser-like client: the console's forms need its CSRF cookie and field.
    transport = httpx.ASGITransport(app=app, client=("203.0.113.77", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        csrf = csrf_from((await http.get("/console/login")).text)
        unlimited = []
        for method, path in routes:
            for key in await redis.keys(f"{ratelimit.LIMITS_PREFIX}*"):
                await redis.delete(key)
            statuses = []
            for _ in range(3):
                if path.startswith("/console"):
                    response = await http.request(
                        method, path, data={"csrf_token": csrf} if method == "POST" else None
                    )
                else:
                    response = await http.request(method, path, json={} if method != "GET" else None)
                statuses.append(response.status_code)
            if statuses[-1] != 429:
                unlimited.append(f"{method} {path}: {statuses}")
            else:
                assert int(response.headers["Retry-After"]) >= 1, path
                if not path.startswith("/console"):  # the console answers an HTML page
                    assert response.json()["error"]["code"] == "rate_limited"
    assert unlimited == [], f"routes the per-address limit does not reach: {unlimited}"


async def test_ipv6_callers_are_counted_by_their_64(app, tight_ip_limit):
    """One subscriber holds a whole /64: a new address per request must not mean a new budget."""
    for n in range(2):
        async with client_from(app, f"2001:db8:5:6::{n + 1}") as http:
            assert (await http.get("/v1/sections")).status_code == 200
    async with client_from(app, "2001:db8:5:6:ffff::1") as http:
        assert (await http.get("/v1/sections")).status_code == 429
    async with client_from(app, "2001:db8:5:7::1") as other:
        assert (await other.get("/v1/sections")).status_code == 200
