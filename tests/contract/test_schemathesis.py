"""A bounded schemathesis run over the whole OpenAPI: every response conforms to the document.

Each response is checked for a documented status code, content type, headers and body schema
(the error statuses and their one JSON shape are declared for every operation, api/openapi.py),
that no 5xx occurs, and that invalid requests are rejected (issue 12, item 4).

Every operation of the app's own OpenAPI is in the run, so endpoints that later issues add are
covered without touching this file. One test per OpenAPI tag (router), with the usual fresh
database and Redis; inside it, each operation gets a freshly signed-in system admin (TOTP verified
at sign-in, so step-up routes work) and real objects to point path parameters at.

Cases per operation: the OpenAPI's own examples, schemathesis' deterministic boundary cases
("coverage" phase), then Hypothesis examples (fixed seed, no shrinking): valid ones aimed at real
objects, valid ones with generated path ids, and invalid ones.

How it runs: schemathesis only *generates* the cases; they are sent through the test's own
``httpx`` client on the test's event loop. Schemathesis' built-in ASGI transport would run the app
on a loop of its own in another thread, where the engine's asyncpg connections and the Redis
client (bound to the loop that made them) cannot be used.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import traceback
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from fastapi.routing import APIRoute, iter_route_contexts
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from redis.asyncio import Redis
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.modes import GenerationMode

from auth.api_clients import ApiScope
from auth.roles import Permission, Role
from core import clock
from tests.contract.support import STRONG_PASSWORD, error_shape_problems
from tests.support.factories import Account, make_account, make_unit

# Bounds per operation (see the module docstring); the whole run takes about half a minute.
COVERAGE_MAX = 30
POSITIVE_KNOWN_IDS = 5
POSITIVE_GENERATED_IDS = 2
NEGATIVE = 5

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
_ROOT = str(Path(__file__).resolve().parents[2]) + "/"
_NOT_OURS = (_ROOT + ".venv/", _ROOT + "tests/")
# Hop-by-hop or computed headers: httpx sets them from the body it actually sends.
_DROPPED_HEADERS = {"content-length", "transfer-encoding", "host", "connection"}


def _openapi() -> dict[str, Any]:
    from cli.asgi import create_app

    spec: dict[str, Any] = create_app(manage_resources=False).openapi()
    return spec


def _labels(spec: dict[str, Any]) -> list[str]:
    return [
        f"{method.upper()} {path}"
        for path, item in spec.get("paths", {}).items()
        for method in item
        if method in HTTP_METHODS
    ]


def _tag(spec: dict[str, Any], label: str) -> str:
    method, path = label.split(" ", 1)
    tags = spec["paths"][path][method.lower()].get("tags") or ["untagged"]
    return str(tags[0])


# Collected once at import, so that every documented operation is in the run. Operations are
# grouped by tag (one router): each group is one test with one database copy, which keeps the
# run short; inside it every operation gets its own accounts and objects.
SPEC = _openapi()
OPERATIONS = _labels(SPEC)
GROUPS: dict[str, list[str]] = {}
for _label in OPERATIONS:
    GROUPS.setdefault(_tag(SPEC, _label), []).append(_label)


# --- the objects that path parameters point at ------------------------------------------------


@dataclass
class World:
    client: httpx.AsyncClient
    admin: Account
    member: Account
    unit_id: str
    admin_token: str = ""
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    async def login(self, account: Account) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/auth/login",
            json={"username": account.username, "password": account.password, "totp_code": account.code()},
        )
        assert response.status_code == 200, f"setup: sign-in failed: {response.text}"
        body: dict[str, Any] = response.json()
        assert body["restriction"] is None, f"setup: session restricted: {body}"
        return body

    async def create(self, path: str, body: dict[str, Any]) -> str:
        response = await self.client.post(path, json=body, headers=self.auth)
        assert response.status_code == 201, (
            f"setup: POST {path} failed: {response.status_code} {response.text}"
        )
        return str(response.json()["id"])


async def _make_world(client: httpx.AsyncClient, path_parameters: set[str]) -> World:
    unit = await make_unit()
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=unit)
    member = await make_account(role=Role.MEMBER, unit=unit)
    world = World(client=client, admin=admin, member=member, unit_id=str(unit.id))
    ids = world.ids
    if "session_id" in path_parameters:
        # Sessions that exist but are not the one the run authenticates with.
        ids["member_session_id"] = str((await world.login(member))["session_id"])
        ids["admin_spare_session_id"] = str((await world.login(admin))["session_id"])
    # Signed in last, so the TOTP step-up is as fresh as it can be when the cases run.
    world.admin_token = (await world.login(admin))["access_token"]
    ids["user_id"] = str(member.id)
    ids["unit_id"] = world.unit_id
    if "client_id" in path_parameters:
        ids["client_id"] = await world.create(
            "/v1/api-clients",
            {"unit_id": world.unit_id, "name": "Cổng thông tin", "scopes": [next(iter(ApiScope)).value]},
        )
    if "device_id" in path_parameters:
        response = await client.post(
            "/v1/devices",
            json={"app": "portal", "platform": "android", "token": f"fcm:{uuid.uuid4().hex}"},
            headers=world.auth,
        )
        assert response.status_code in (200, 201), f"setup: POST /v1/devices failed: {response.text}"
        ids["device_id"] = str(response.json()["id"])
    if "delegation_id" in path_parameters:
        ids["delegation_id"] = await world.create(
            "/v1/delegations",
            {
                "delegate_id": str(member.id),
                "permissions": [Permission.UNITS_READ.value],
                "expires_at": (clock.utcnow() + dt.timedelta(days=1)).isoformat(),
            },
        )
    return world


def _known_path_parameters(operation: Any, world: World) -> dict[str, str]:
    known: dict[str, str] = {}
    names = {parameter.name for parameter in operation.path_parameters}
    for name in names:
        if name == "session_id":
            # A user's session under /v1/users/{user_id}/…, the caller's own (spare) one otherwise.
            key = "member_session_id" if "user_id" in names else "admin_spare_session_id"
            known[name] = world.ids[key]
        elif name in world.ids:
            known[name] = world.ids[name]
    return known


# --- generation and sending -------------------------------------------------------------------


def _generate(strategy: Any, count: int, label: str) -> list[Any]:
    """``count`` cases from ``strategy``, the same on every run: fixed seed, no shrinking."""
    cases: list[Any] = []

    @seed(zlib.crc32(label.encode()))
    @settings(
        max_examples=count,
        phases=[Phase.explicit, Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(case: Any) -> None:
        cases.append(case)

    # Negative mode for an operation without parameters has nothing to make invalid.
    with contextlib.suppress(Unsatisfiable):
        collect()
    return cases[:count]


def _id_pins(world: World) -> dict[str, str]:
    """Body fields that name other objects, pinned to real ones so that valid-looking bodies get
    past the lookups and reach the service and the database."""
    return {
        "unit_id": world.unit_id,
        "parent_id": world.unit_id,
        "delegate_id": str(world.member.id),
        "expires_at": (clock.utcnow() + dt.timedelta(days=1)).isoformat(),
    }


def _coverage(schema: Any, operation: Any, world: World) -> list[Any]:
    """Schemathesis' deterministic boundary cases (shortest/longest strings, limits, enum values,
    optional fields absent/present), valid ones only, evenly thinned to ``COVERAGE_MAX``."""
    config = schema.config.generation_for(operation=operation)
    cases = list(
        schema.iter_coverage_cases(
            operation, generation_modes=[GenerationMode.POSITIVE], generation_config=config
        )
    )
    if len(cases) > COVERAGE_MAX:
        step = len(cases) / COVERAGE_MAX
        cases = [cases[int(i * step)] for i in range(COVERAGE_MAX)]
    return _pin(cases, operation, world)


def _examples(schema: Any, operation: Any, world: World, label: str) -> list[Any]:
    """One case per example the OpenAPI gives (``openapi_examples=``, ``examples`` in a model):
    the way for an endpoint with rules the schema cannot express to get valid requests here."""
    cases = [
        case
        for number, strategy in enumerate(schema.get_strategies_from_examples(operation))
        for case in _generate(strategy, 1, f"{label} example {number}")
    ]
    return _pin(cases, operation, world)


def _pin(cases: list[Any], operation: Any, world: World) -> list[Any]:
    known, pins = _known_path_parameters(operation, world), _id_pins(world)
    for case in cases:
        for name, value in known.items():
            case.path_parameters[name] = value
        if isinstance(case.body, dict):
            for key, value in pins.items():
                if isinstance(case.body.get(key), str):
                    case.body[key] = value
    return cases


def _config(parameters: dict[str, str] | None = None) -> SchemathesisConfig:
    # Test data holds no secrets: show passwords and tokens in the curl reproductions.
    return SchemathesisConfig.from_dict(
        {"output": {"sanitization": {"enabled": False}}, "parameters": parameters or {}}
    )


def _cases(spec: dict[str, Any], label: str, world: World) -> list[tuple[str, Any]]:
    method, path = label.split(" ", 1)
    plain_schema = schemathesis.openapi.from_dict(spec, config=_config())
    plain = plain_schema[path][method]
    # Also a password the policy accepts, so that random bodies are not all refused as weak.
    pins = {f"body.{key}": value for key, value in _id_pins(world).items()}
    pins.update({"body.password": STRONG_PASSWORD, "body.new_password": STRONG_PASSWORD})
    pinned = schemathesis.openapi.from_dict(spec, config=_config(pins))
    known = _known_path_parameters(plain, world)

    out: list[tuple[str, Any]] = [("example", case) for case in _examples(plain_schema, plain, world, label)]
    out.extend(("coverage", case) for case in _coverage(plain_schema, plain, world))
    batches: list[tuple[str, Any, GenerationMode, dict[str, str] | None, int]] = [
        ("positive/known-ids", pinned[path][method], GenerationMode.POSITIVE, known, POSITIVE_KNOWN_IDS),
        ("negative", plain, GenerationMode.NEGATIVE, None, NEGATIVE),
    ]
    if plain.path_parameters:
        batches.insert(
            1, ("positive/generated-ids", plain, GenerationMode.POSITIVE, None, POSITIVE_GENERATED_IDS)
        )
    for kind, operation, mode, path_parameters, count in batches:
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters or None)
        out.extend((kind, case) for case in _generate(strategy, count, f"{label} {kind}"))
    return out


async def _send(client: httpx.AsyncClient, case: Any, auth: dict[str, str]) -> httpx.Response:
    """The exact request schemathesis would send, through the test's client and event loop."""
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url), headers=auth)
    prepared = requests.Request(
        **{
            key: kwargs[key]
            for key in ("method", "url", "headers", "params", "cookies", "json", "data", "files")
            if key in kwargs
        }
    ).prepare()
    body = prepared.body.encode("utf-8") if isinstance(prepared.body, str) else prepared.body
    assert body is None or isinstance(body, bytes)
    headers = {
        key: value if isinstance(value, str) else value.decode("latin-1")
        for key, value in prepared.headers.items()
        if key.lower() not in _DROPPED_HEADERS
    }
    return await client.request(str(prepared.method), str(prepared.url), headers=headers, content=body)


def _curl(case: Any, client: httpx.AsyncClient) -> str:
    try:
        return str(case.as_curl_command(base_url=str(client.base_url)))
    except Exception as exc:  # a curl rendering problem must not hide the real failure
        return f"<no curl: {exc!r}>"


def _where(exc: BaseException) -> str:
    """The exception and the project's own frames it passed through (not the framework's)."""
    frames = [
        f"    {frame.filename.removeprefix(_ROOT)}:{frame.lineno} in {frame.name}"
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename.startswith(_ROOT) and not frame.filename.startswith(_NOT_OURS)
    ]
    return "\n".join([f"{type(exc).__name__}: {str(exc)[:300]}", *frames])


# Every response must be one the OpenAPI document promises: a documented status, content type,
# headers and body schema (errors included: api/openapi.py declares the error shape), and an
# invalid request must not be accepted.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def _check(case: Any, response: httpx.Response, client: httpx.AsyncClient) -> list[str]:
    problems: list[str] = []
    try:
        case.validate_response(response, checks=CHECKS)
    except FailureGroup as group:
        problems.append(str(group))
    if response.status_code >= 400:
        shape = error_shape_problems(response)
        if shape:
            problems.append(
                f"error not in the JSON error shape: {shape}\n"
                f"  {response.status_code} {response.text[:300]}\n  reproduce: {_curl(case, client)}"
            )
    return problems


# --- tests ------------------------------------------------------------------------------------


async def test_openapi_documents_every_route():
    """A route missing from the OpenAPI would silently escape the run below."""
    from cli.asgi import create_app

    app = create_app(manage_resources=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        served = (await http.get("/openapi.json")).json()
    documented = set(_labels(served))
    routes = {
        f"{method} {context.path}"
        for context in iter_route_contexts(app.router.routes)
        if isinstance(context.original_route, APIRoute)
        for method in context.methods or ()
    }
    assert len(routes) > 20, "route discovery broke: found too few routes"
    assert sorted(routes - documented) == [], "routes missing from the OpenAPI (include_in_schema=False?)"
    assert sorted(set(OPERATIONS) ^ documented) == [], "collected operations differ from the served OpenAPI"
    assert len(OPERATIONS) >= len(routes)
    assert sum(len(labels) for labels in GROUPS.values()) == len(OPERATIONS)


async def _run_operation(label: str, client: httpx.AsyncClient) -> tuple[int, list[str]]:
    """Send the operation's cases; return how many were sent and what went wrong."""
    path = label.split(" ", 1)[1]
    try:
        world = await _make_world(client, set(re.findall(r"{(\w+)}", path)))
    except AssertionError as exc:
        return 0, [f"setup failed: {exc}"]
    cases = _cases(SPEC, label, world)
    if not cases:
        return 0, ["schemathesis generated no cases"]
    failures: list[str] = []
    for kind, case in cases:
        try:
            response = await _send(client, case, world.auth)
        except Exception as exc:
            # The app raised past its handlers: the client re-raises what a server logs with its 500.
            failures.append(f"[{kind}] 500: {_where(exc)}\n  reproduce: {_curl(case, client)}")
            continue
        failures.extend(f"[{kind}] {problem}" for problem in _check(case, response, client))
    return len(cases), failures


def test_every_operation_declares_the_error_shape():
    """Clients generate code from the document: the errors they will get must be in it, in the
    shape they really have (not FastAPI's default 422 body, which the API never sends)."""
    assert "HTTPValidationError" not in SPEC.get("components", {}).get("schemas", {})
    for label in OPERATIONS:
        method, path = label.split(" ", 1)
        responses = SPEC["paths"][path][method.lower()]["responses"]
        for status in ("400", "401", "403", "404", "409", "413", "422", "429", "500", "503"):
            schema = responses.get(status, {}).get("content", {}).get("application/json", {}).get("schema")
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, f"{label}: {status} -> {schema}"
    error = SPEC["components"]["schemas"]["ErrorInfo"]
    assert set(error["properties"]) == {"code", "message", "details", "request_id"}


@pytest.mark.parametrize("tag", sorted(GROUPS))
async def test_every_response_conforms_to_the_openapi(
    tag: str, client: httpx.AsyncClient, redis: Redis
) -> None:
    report: list[str] = []
    for label in GROUPS[tag]:
        # Rate-limit counters live in Redis: every operation starts from a clean slate.
        await redis.flushdb()
        sent, failures = await _run_operation(label, client)
        if failures:
            report.append(f"=== {label}: {len(failures)} of {sent} cases failed\n\n" + "\n\n".join(failures))
    if report:
        pytest.fail("\n\n".join(report), pytrace=False)
