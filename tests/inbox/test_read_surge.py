"""The read surge after a push (issue 16): a device's unread count and first page take one Redis
round trip for both rate limits and run outside a transaction, without weakening the checks."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import fastapi.routing
import httpx
import orjson
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from redis.asyncio.connection import AbstractConnection
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from api import surge
from api.routers.inbox import InboxReading
from auth import ratelimit
from auth.roles import Role
from core import clock, db, pooled_driver
from core.config import get_settings
from core.db import get_engine
from devices import service
from tests.inbox.helpers import anonymous_device, insert_notification, signed_in, unread
from tests.support.factories import make_unit

READS = ("/v1/inbox/unread-count", "/v1/inbox?limit=20")
# PostgreSQL round trips of a device's read once the app's broadcast window is in memory: the
# credential check and the count in one statement; the check with the markers, then the page.
STATEMENTS = {READS[0]: 1, READS[1]: 2}


@pytest.fixture
def redis_commands(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every command the app sends to Redis (one command is one round trip here),
    noted where redis-py writes it to its socket, whichever path built it. Observed only."""
    seen: list[str] = []
    send = AbstractConnection.send_packed_command

    async def noted(self: Any, command: Any, *args: Any, **options: Any) -> Any:
        packed = command if isinstance(command, bytes) else b"".join(command)
        # *<n>\r\n$<length>\r\n<name>\r\n...
        seen.append(packed.split(b"\r\n", 3)[2].decode().upper())
        return await send(self, command, *args, **options)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", noted)
    return seen


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every round trip to PostgreSQL the app makes, in order: SQLAlchemy's statements (its cursor
    events, noted once they ran), the BEGIN, COMMIT and ROLLBACK of its transactions (asyncpg's
    ``Transaction``), and the statements run on the driver connection directly (asyncpg's
    ``fetchrow`` and ``fetch``). Observed only: each call still runs."""
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement.strip())

    for name in ("fetchrow", "fetch"):
        original_fetch = getattr(asyncpg.connection.Connection, name)

        async def noted_fetch(
            self: Any, query: str, *args: Any, _original: Any = original_fetch, **options: Any
        ) -> Any:
            seen.append(query.strip())
            return await _original(self, query, *args, **options)

        monkeypatch.setattr(asyncpg.connection.Connection, name, noted_fetch)
    for method, word in (("start", "BEGIN"), ("commit", "COMMIT"), ("rollback", "ROLLBACK")):
        original = getattr(asyncpg.transaction.Transaction, method)

        async def noted(self: Any, *, _original: Any = original, _word: str = word) -> Any:
            seen.append(_word)
            return await _original(self)

        monkeypatch.setattr(asyncpg.transaction.Transaction, method, noted)
    engine = get_engine().sync_engine
    event.listen(engine, "after_cursor_execute", note)
    yield seen
    event.remove(engine, "after_cursor_execute", note)


def kinds(statements: list[str]) -> list[str]:
    """``SELECT``, ``UPDATE``, ``BEGIN``, ``COMMIT``…: each statement's first word."""
    return [statement.split(None, 1)[0].rstrip(";").upper() for statement in statements]


@pytest.mark.parametrize("path", READS)
async def test_a_device_reads_outside_a_transaction_with_one_redis_call(
    client, redis, statements, redis_commands, path
):
    device = await anonymous_device(client, topics=["t1"])
    assert (await client.get(path, headers=device.headers)).status_code == 200
    redis_commands.clear()
    statements.clear()
    response = await client.get(path, headers=device.headers)
    assert response.status_code == 200, response.text
    # Both rate limits (address and device) in one script call; nothing else.
    assert redis_commands == ["EVALSHA"], redis_commands
    # No BEGIN or COMMIT: the credential's device row carries the count (everything), or the
    # markers (then the page).
    assert kinds(statements) == ["SELECT"] * STATEMENTS[path], statements
    assert "FROM devices d" in statements[0], statements[0]


async def test_signed_in_readers_keep_their_transaction(client, redis, statements):
    reader = await signed_in(client, unit=await make_unit(), role=Role.MEMBER)
    statements.clear()
    response = await client.get("/v1/inbox/unread-count", headers=reader.headers)
    assert response.status_code == 200, response.text
    assert kinds(statements)[0] == "BEGIN" and kinds(statements)[-1] == "COMMIT", statements


async def test_writes_of_a_device_keep_their_transaction(client, redis, statements):
    device = await anonymous_device(client)
    statements.clear()
    response = await client.post("/v1/inbox/read-all", headers=device.headers)
    assert response.status_code == 200, response.text
    assert kinds(statements)[0] == "BEGIN" and kinds(statements)[-1] == "COMMIT", statements


async def test_a_retired_credential_is_refused_on_the_read_path(client, redis):
    device = await anonymous_device(client)
    assert (await client.get(READS[0], headers=device.headers)).status_code == 200
    assert (await client.delete(f"/v1/devices/{device.reader_id}", headers=device.headers)).status_code == 204
    for path in READS:
        response = await client.get(path, headers=device.headers)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "invalid_device_credential"


async def test_refused_credentials_still_count_against_the_address(client, redis, monkeypatch):
    monkeypatch.setattr(get_settings(), "rate_limit_per_ip", "3/minute")
    device = await anonymous_device(client)  # one request from the address
    forged = {"Authorization": device.headers["Authorization"][:-4] + "AAAA"}
    assert (await client.get(READS[0], headers=forged)).status_code == 401
    assert (await client.get(READS[0], headers=forged)).status_code == 401
    limited = await client.get(READS[0], headers=forged)
    assert limited.status_code == 429, limited.text
    # The valid credential from the same address is limited too: the address count comes first.
    assert (await client.get(READS[0], headers=device.headers)).status_code == 429


async def test_the_device_limit_holds_on_the_read_path(client, redis, monkeypatch):
    device = await anonymous_device(client)
    monkeypatch.setattr(get_settings(), "rate_limit_per_client", "2/minute")
    monkeypatch.setattr(get_settings(), "abuse_strikes", 1000)
    assert (await client.get(READS[0], headers=device.headers)).status_code == 200
    assert (await client.get(READS[1], headers=device.headers)).status_code == 200
    limited = await client.get(READS[0], headers=device.headers)
    assert limited.status_code == 429, limited.text
    assert 1 <= int(limited.headers["Retry-After"]) <= 60


async def test_a_connection_dropped_while_idle_is_replaced(client, redis, owner_engine, monkeypatch):
    device = await anonymous_device(client)
    assert (await client.get(READS[0], headers=device.headers)).status_code == 200
    # Every pooled connection counts as idle now; the server ends them all behind the pool's back.
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
    async with owner_engine.connect() as conn:
        ended = await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND usename <> current_user"
            )
        )
        assert any(ended.scalars()), "no pooled connection to end"
    response = await client.get(READS[0], headers=device.headers)
    assert response.status_code == 200, response.text


async def test_a_devices_count_and_pages_stay_exact_with_every_kind_of_state(client, redis):
    """The count and pages read with the credential's row (markers, exceptions and own rows per
    app in its one statement) against a hand-counted inbox: broadcasts to all, to the device's
    topic and to another, one read, one archived, a read-all marker, own rows of two apps."""
    device = await anonymous_device(client, topics=["t1"])
    base = clock.utcnow() + dt.timedelta(seconds=1)

    async def at(second: int, **fields: Any) -> str:
        created_at = base + dt.timedelta(seconds=second)
        return str(await insert_notification(created_at=created_at, **fields))

    first_all = await at(1, audience={"all": True})
    topic = await at(2, audience={"topics": ["t1"]})
    await at(3, audience={"topics": ["t2"]})  # another topic: never the device's
    archived = await at(4, audience={"all": True})
    own_portal = await at(5, audience={"devices": ["x"]}, readers=[device.reader_id])
    own_tracking = await at(6, audience={"devices": ["x"]}, readers=[device.reader_id], app="tracking")
    newest = await at(7, audience={"topics": ["t1"]})
    assert await unread(client, device) == 6

    assert (await client.post(f"/v1/inbox/{topic}/read", headers=device.headers)).status_code == 200
    assert (await client.post(f"/v1/inbox/{archived}/archive", headers=device.headers)).status_code == 200
    read_all = await client.post("/v1/inbox/read-all", json={"up_to": first_all}, headers=device.headers)
    assert read_all.status_code == 200, read_all.text
    # The transaction's own count (inbox/service.py) and the read path's agree.
    assert read_all.json()["unread"] == await unread(client, device) == 3  # newest, both own rows
    assert await unread(client, device, app="portal") == 2
    assert await unread(client, device, app="tracking") == 1

    def listed(response: Any) -> list[tuple[str, bool]]:
        assert response.status_code == 200, response.text
        return [(item["id"], item["read"]) for item in response.json()["items"]]

    page = await client.get("/v1/inbox", headers=device.headers)
    # The read-all marker (read with the credential) makes first_all read.
    assert listed(page) == [
        (newest, False),
        (own_tracking, False),
        (own_portal, False),
        (topic, True),
        (first_all, True),
    ]
    unread_page = await client.get("/v1/inbox", params={"unread": "true"}, headers=device.headers)
    assert listed(unread_page) == [(newest, False), (own_tracking, False), (own_portal, False)]
    archive = await client.get("/v1/inbox", params={"archived": "true"}, headers=device.headers)
    assert listed(archive) == [(archived, False)]
    tracking = await client.get("/v1/inbox", params={"app": "tracking"}, headers=device.headers)
    assert listed(tracking) == [(own_tracking, False)]


async def test_a_forged_or_foreign_credential_reads_nothing(client, redis):
    device, other = await anonymous_device(client), await anonymous_device(client)
    secret = device.headers["Authorization"].rsplit("_", 1)[1]
    # The other device's id with this device's secret, and this device's id with a made-up one.
    for forged in (
        f"Bearer chd_{other.reader_id.hex}_{secret}",
        device.headers["Authorization"][:-4] + "AAAA",
        "Bearer chd_not-a-uuid_secret",
    ):
        for path in READS:
            response = await client.get(path, headers={"Authorization": forged})
            assert response.status_code == 401, (forged, path, response.text)
            assert response.json()["error"]["code"] == "invalid_device_credential"


async def test_an_app_start_that_changes_nothing_writes_nothing_within_the_hour(
    client, redis, statements, owner_engine
):
    body = {"app": "portal", "platform": "android", "token": f"fcm-{uuid.uuid4().hex}", "topics": ["t1"]}
    created = await client.post("/v1/devices", json=body)
    assert created.status_code == 201, created.text
    headers = {"Authorization": f"Bearer {created.json()['device_credential']}"}

    async def refresh(**changes: Any) -> tuple[dict[str, Any], list[str]]:
        statements.clear()
        response = await client.post("/v1/devices", json=body | changes, headers=headers)
        assert response.status_code == 200, response.text
        return response.json(), kinds(statements)

    _, ran = await refresh()  # the credential's first use is recorded (once per device)
    assert ran == ["SELECT", "BEGIN", "UPDATE", "COMMIT"], statements
    refreshed, ran = await refresh()
    # The credential's statement only, which reads the device row the answer needs (on the
    # driver, api.deps.with_device_row): no transaction, no lock, no UPDATE (the app starts
    # again and again). It was BEGIN, the device through the session, COMMIT.
    assert ran == ["SELECT"], statements
    assert statements[0].startswith("SELECT d.id") and "d.last_seen_at" in statements[0], statements
    assert refreshed["id"] == created.json()["id"] and refreshed["device_credential"] is None
    assert refreshed == created.json() | {"device_credential": None}

    changed, ran = await refresh(locale="en")
    # A change: the credential's row, then one UPDATE in a transaction (no SELECT … FOR UPDATE).
    assert ran == ["SELECT", "BEGIN", "UPDATE", "COMMIT"], statements
    assert changed["locale"] == "en"

    async with owner_engine.begin() as conn:
        await conn.execute(
            text("UPDATE devices SET last_seen_at = now() - interval '61 minutes' WHERE id = :id"),
            {"id": uuid.UUID(created.json()["id"])},
        )
    seen, ran = await refresh(locale="en")
    assert ran == ["SELECT", "BEGIN", "UPDATE", "COMMIT"], statements
    assert dt.datetime.fromisoformat(seen["last_seen_at"]) > clock.utcnow() - dt.timedelta(minutes=1)

    # Another token with the credential is no refresh: a new device, as before.
    new_token = body | {"token": f"fcm-{uuid.uuid4().hex}"}
    other = await client.post("/v1/devices", json=new_token, headers=headers)
    assert other.status_code == 201, other.text


async def test_a_connection_lost_under_the_drivers_statement_is_a_503_and_then_replaced(
    client, redis, owner_engine, monkeypatch
):
    """The credential's statement runs on the driver connection, past SQLAlchemy; when that fails
    it runs again through SQLAlchemy, which sees the dead connection: 503, and the pool drops it."""
    device = await anonymous_device(client)
    assert (await client.get(READS[0], headers=device.headers)).status_code == 200
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 3600.0)  # no ping: the statement finds it dead
    async with owner_engine.connect() as conn:
        ended = await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND usename <> current_user"
            )
        )
        assert any(ended.scalars()), "no pooled connection to end"
    answers = [(await client.get(READS[0], headers=device.headers)) for _ in range(3)]
    codes = [answer.status_code for answer in answers]
    # Each dead pooled connection fails one request (as any statement would), then is replaced.
    assert set(codes) <= {200, 503} and codes[-1] == 200, [answer.text for answer in answers]
    for answer in answers:
        if answer.status_code == 503:
            assert answer.json()["error"]["code"] == "unavailable", answer.text


async def test_a_page_statement_built_for_one_reader_carries_none_of_its_values_to_the_next(client, redis):
    """Pages of one shape share a statement (inbox/pages.py) with their values bound per request:
    two devices of other topics, one with a read-all marker, see their own inboxes only."""
    first = await anonymous_device(client, topics=["t1"])
    second = await anonymous_device(client, topics=["t2"])
    base = clock.utcnow() + dt.timedelta(seconds=1)
    later = base + dt.timedelta(seconds=1)
    to_first = await insert_notification(audience={"topics": ["t1"]}, created_at=base)
    to_second = await insert_notification(audience={"topics": ["t2"]}, created_at=later)
    own = await insert_notification(
        audience={"devices": ["x"]}, readers=[second.reader_id], created_at=later + dt.timedelta(seconds=1)
    )
    read_all = await client.post("/v1/inbox/read-all", headers=first.headers)
    assert read_all.status_code == 200, read_all.text
    for params in ({}, {"unread": "true"}):
        pages = [await client.get("/v1/inbox", params=params, headers=c.headers) for c in (first, second)]
        got = [[(item["id"], item["read"]) for item in page.json()["items"]] for page in pages]
        expected_first = [] if params else [(str(to_first), True)]
        assert got == [expected_first, [(str(own), False), (str(to_second), False)]], (params, got)


@pytest.fixture
def checkouts() -> Iterator[list[str]]:
    """Every checkout from the request pool, noted by the pool's own event."""
    seen: list[str] = []

    def note(*_: Any) -> None:
        seen.append("checkout")

    pool = get_engine().sync_engine.pool
    event.listen(pool, "checkout", note)
    yield seen
    event.remove(pool, "checkout", note)


async def test_a_devices_count_takes_one_pooled_connection_and_no_session_work(
    client, redis, statements, checkouts
):
    """The credential and the count come from one pooled connection's driver (core/pooled_driver.py):
    one checkout, no statement through SQLAlchemy, and the request's session never takes a
    connection (before, it took the one the statement ran on). The page takes a second checkout
    for its page, on the driver too (it ran through the session before)."""
    device = await anonymous_device(client, topics=["t1"])
    engine = get_engine().sync_engine
    through_sqlalchemy: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        through_sqlalchemy.append(statement)

    def began(*_: Any) -> None:
        sessions_connected.append("session")

    sessions_connected: list[str] = []
    assert (await client.get(READS[0], headers=device.headers)).status_code == 200  # first use recorded
    event.listen(engine, "before_cursor_execute", note)
    event.listen(Session, "after_begin", began)  # a session took a connection
    try:
        checkouts.clear()
        assert (await client.get(READS[0], headers=device.headers)).status_code == 200
        assert (checkouts, through_sqlalchemy, sessions_connected) == (["checkout"], [], []), (
            checkouts,
            through_sqlalchemy,
            sessions_connected,
        )
        checkouts.clear()
        assert (await client.get(READS[1], headers=device.headers)).status_code == 200
        # The page on the driver too (inbox/pages.py), on a connection of its own: nothing
        # through SQLAlchemy, and still no session connection.
        assert (len(checkouts), through_sqlalchemy, sessions_connected) == (2, [], []), (
            checkouts,
            through_sqlalchemy,
            sessions_connected,
        )
    finally:
        event.remove(engine, "before_cursor_execute", note)
        event.remove(Session, "after_begin", began)


async def test_a_script_redis_lost_is_run_from_its_text_and_still_counts(
    client, redis, redis_commands, monkeypatch
):
    """The limits' script is sent by SHA on the pool's connection (auth/ratelimit.py); when Redis
    does not know it (restarted, flushed: here a SHA it never saw), EVAL runs it from its text,
    and the limits hold as before."""
    device = await anonymous_device(client)
    monkeypatch.setattr(ratelimit, "_SHA", "0" * 40)
    monkeypatch.setattr(get_settings(), "rate_limit_per_client", "2/minute")
    monkeypatch.setattr(get_settings(), "abuse_strikes", 1000)
    redis_commands.clear()
    assert (await client.get(READS[0], headers=device.headers)).status_code == 200
    assert redis_commands == ["EVALSHA", "EVAL"], redis_commands
    assert (await client.get(READS[0], headers=device.headers)).status_code == 200
    limited = await client.get(READS[0], headers=device.headers)
    assert limited.status_code == 429, limited.text
    assert limited.json()["error"]["code"] == "rate_limited", limited.text


def test_the_surge_routes_solve_one_dependency(app):
    """The unread count and the list take the session, the policy and the reader as one
    dependency (api/routers/inbox.py ``InboxReading``): FastAPI's work per dependency counts."""
    routes = {
        context.path: context.dependant
        for context in iter_route_contexts(app.router.routes)
        if isinstance(context.original_route, APIRoute) and "GET" in (context.methods or ())
    }
    for path in ("/v1/inbox/unread-count", "/v1/inbox"):
        calls = [dependency.call for dependency in routes[path].dependencies]
        assert len(calls) == 1 and isinstance(calls[0], InboxReading), (path, calls)


async def test_registrations_reuse_their_statements(client, redis):
    """A new device's INSERT and an app start's UPDATE are built once (devices/service.py)."""
    body = {"app": "portal", "platform": "android", "token": f"fcm-{uuid.uuid4().hex}", "locale": "vi"}
    inserts, updates = service._insert_statement.cache_info(), service._refresh_statement.cache_info()
    tokens = [f"fcm-{uuid.uuid4().hex}" for _ in "ab"]
    created = [await client.post("/v1/devices", json=body | {"token": token}) for token in tokens]
    assert [response.status_code for response in created] == [201, 201], [r.text for r in created]
    headers = {"Authorization": f"Bearer {created[0].json()['device_credential']}"}
    for locale in ("en", "vi"):  # each a change: one UPDATE each
        changed = body | {"token": tokens[0], "locale": locale}
        refreshed = await client.post("/v1/devices", json=changed, headers=headers)
        assert refreshed.status_code == 200 and refreshed.json()["locale"] == locale, refreshed.text
    assert service._insert_statement.cache_info().hits >= inserts.hits + 1
    assert service._refresh_statement.cache_info().hits >= updates.hits + 1
    assert (
        service._insert_statement.cache_info().currsize
        == service._refresh_statement.cache_info().currsize
        == 1
    )


@pytest.fixture
def solved(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The path of every request FastAPI solved the route's declaration for (its standard
    handler's ``solve_dependencies``). Observed only."""
    seen: list[str] = []
    original = fastapi.routing.solve_dependencies  # type: ignore[attr-defined]

    async def noted(*, request: Any, **arguments: Any) -> Any:
        seen.append(request.url.path)
        return await original(request=request, **arguments)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", noted)
    return seen


async def test_an_apps_reads_and_registration_skip_fastapis_per_request_solving(client, redis, solved):
    """A device's count and page, a new device and an app start are answered by their routes'
    fast paths (api/surge.py): FastAPI solves nothing for them. Whatever those are not for takes
    FastAPI's own handler: a signed-in reader, a parameter that does not validate (its 422)."""
    body = {"app": "portal", "platform": "android", "token": f"fcm-{uuid.uuid4().hex}", "topics": ["t1"]}
    created = await client.post("/v1/devices", json=body)
    assert created.status_code == 201, created.text
    headers = {"Authorization": f"Bearer {created.json()['device_credential']}"}
    for path in READS:
        assert (await client.get(path, headers=headers)).status_code == 200
    assert (await client.post("/v1/devices", json=body, headers=headers)).status_code == 200
    assert solved == [], solved

    reader = await signed_in(client, unit=await make_unit(), role=Role.MEMBER)
    solved.clear()
    assert (await client.get(READS[0], headers=reader.headers)).status_code == 200
    assert solved == ["/v1/inbox/unread-count"], solved
    solved.clear()
    invalid = await client.get("/v1/inbox", params={"limit": "0"}, headers=headers)
    assert invalid.status_code == 422 and invalid.json()["error"]["code"] == "validation_error", invalid.text
    invalid = await client.post("/v1/devices", json=body | {"platform": "symbian"}, headers=headers)
    assert invalid.status_code == 422, invalid.text
    assert solved == ["/v1/inbox", "/v1/devices"], solved
    # JSON FastAPI cannot parse is refused by its handler before any solving (the same 422).
    unparsable = await client.post("/v1/devices", content=b'{"app": ', headers=headers | JSON)
    assert unparsable.status_code == 422, unparsable.text


JSON = {"Content-Type": "application/json"}


async def test_the_fast_paths_answer_byte_for_byte_as_fastapis_own_handler(
    client, redis, monkeypatch, owner_engine
):
    """The same requests to an app whose surge routes have no fast path (FastAPI's standard
    handler for everything) get the same status, content type and bytes: counts, pages with
    every kind of parameter and item, an app start, and the refusals (422, 401)."""
    from cli.asgi import create_app

    monkeypatch.setattr(surge, "_FAST", {})
    standard_app = create_app(manage_resources=False)
    body = {"app": "portal", "platform": "android", "token": f"fcm-{uuid.uuid4().hex}", "topics": ["t1"]}
    created = await client.post("/v1/devices", json=body)
    assert created.status_code == 201, created.text
    device = {"Authorization": f"Bearer {created.json()['device_credential']}"}
    reader_id = uuid.UUID(created.json()["id"])
    base = clock.utcnow() + dt.timedelta(seconds=1)
    ids = [
        await insert_notification(audience={"all": True}, created_at=base),
        await insert_notification(audience={"topics": ["t1"]}, created_at=base + dt.timedelta(seconds=1)),
        await insert_notification(
            audience={"devices": ["x"]}, readers=[reader_id], created_at=base + dt.timedelta(seconds=2)
        ),
        await insert_notification(audience={"all": True}, created_at=base + dt.timedelta(seconds=3)),
        await insert_notification(
            audience={"devices": ["x"]},
            readers=[reader_id],
            created_at=base + dt.timedelta(seconds=4),
            app="tracking",
        ),
    ]
    async with owner_engine.begin() as conn:  # every kind of content a list shows
        for change, target in (
            ("sensitivity = 'internal'", ids[0]),
            ("withdrawn_at = now()", ids[1]),
            (
                "deep_link = 'https://example.gov.vn/tin/1', data = '{\"story\": \"1\"}', "
                'title = \'{"vi": "Tin", "en": "News"}\'',
                ids[3],
            ),
        ):
            await conn.execute(text(f"UPDATE notifications SET {change} WHERE id = :id"), {"id": target})
    assert (await client.post(f"/v1/inbox/{ids[2]}/read", headers=device)).status_code == 200
    assert (await client.post("/v1/devices", json=body, headers=device)).status_code == 200
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/v1/inbox/unread-count", {}),
        ("GET", "/v1/inbox/unread-count?app=tracking", {}),
        ("GET", "/v1/inbox/unread-count?app=nope", {}),
        ("GET", "/v1/inbox/unread-count?app=", {}),
        ("GET", "/v1/inbox", {}),
        ("GET", "/v1/inbox?limit=2", {}),
        ("GET", "/v1/inbox?limit=2&limit=3", {}),
        ("GET", "/v1/inbox?unread=true&app=portal&kind=breaking_news", {}),
        ("GET", "/v1/inbox?archived=1&since=2026-01-01T00:00:00%2B07:00", {}),
        ("GET", "/v1/inbox?limit=0", {}),
        ("GET", "/v1/inbox?limit=x&unread=maybe", {}),
        ("GET", "/v1/inbox?since=yesterday", {}),
        ("POST", "/v1/devices", {"json": body}),
        ("POST", "/v1/devices", {"json": body | {"platform": "symbian"}}),
        ("POST", "/v1/devices", {"content": b"[1, 2", "headers": JSON}),
        ("POST", "/v1/devices", {"content": b"", "headers": JSON}),
        ("POST", "/v1/devices", {"content": orjson.dumps(body), "headers": {"Content-Type": "text/plain"}}),
    ]
    transport = httpx.ASGITransport(app=standard_app, client=("203.0.113.10", 51000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as standard:
        for number, (method, path, options) in enumerate(requests):
            answers = []
            for http in (client, standard):
                headers = device | options.get("headers", {}) | {"X-Request-ID": f"same-{number}"}
                extra = {key: value for key, value in options.items() if key != "headers"}
                answers.append(await http.request(method, path, headers=headers, **extra))
            fast, slow = ((a.status_code, a.headers.get("content-type"), a.content) for a in answers)
            assert fast == slow, (method, path, fast, slow)
            if path == "/v1/inbox":  # every kind of item: internal, withdrawn, linked, own, read
                assert len(answers[0].json()["items"]) == 5, answers[0].text
        forged = {"Authorization": device["Authorization"][:-4] + "AAAA", "X-Request-ID": "same-forged"}
        for path in READS:
            refused = [await http.get(path, headers=forged) for http in (client, standard)]
            assert refused[0].status_code == 401 and refused[0].content == refused[1].content


async def test_a_page_on_the_driver_is_the_page_through_the_session(client, redis, monkeypatch, owner_engine):
    """A device's page is read on a pooled connection's driver (inbox/pages.py); when the driver
    fails the same statement runs through the session: the same page, to the byte."""
    device = await anonymous_device(client, topics=["t1"])
    base = clock.utcnow() + dt.timedelta(seconds=1)
    ids = [
        await insert_notification(audience={"all": True}, created_at=base + dt.timedelta(seconds=k))
        for k in range(4)
    ]
    await insert_notification(
        audience={"devices": ["x"]}, readers=[device.reader_id], created_at=base + dt.timedelta(seconds=9)
    )
    async with owner_engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE notifications SET sensitivity = 'classified', data = '{\"k\": \"v\"}' WHERE id = :i"
            ),
            {"i": ids[1]},
        )
    assert (await client.post(f"/v1/inbox/{ids[0]}/archive", headers=device.headers)).status_code == 200
    paths = ["/v1/inbox", "/v1/inbox?limit=2", "/v1/inbox?archived=true", "/v1/inbox?unread=true"]
    on_driver = [await client.get(path, headers=device.headers) for path in paths]
    ran: list[str] = []

    async def failed(statement: str, parameters: Any) -> Any:
        ran.append(statement)
        raise pooled_driver.DriverFailed("ConnectionResetError")

    monkeypatch.setattr(pooled_driver, "fetch", failed)
    through_session = [await client.get(path, headers=device.headers) for path in paths]
    assert len(ran) >= len(paths), ran
    for path, first, second in zip(paths, on_driver, through_session, strict=True):
        assert first.status_code == second.status_code == 200, (path, second.text)
        assert first.content == second.content, path
    second_page = await client.get(
        "/v1/inbox", params={"limit": 2, "cursor": on_driver[1].json()["next_cursor"]}, headers=device.headers
    )
    assert [item["id"] for item in second_page.json()["items"]] == [str(ids[2]), str(ids[1])]


async def test_an_apps_first_start_inserts_first(client, redis, statements):
    """A new anonymous device is one INSERT in its transaction (its token is new as a rule: no
    SELECT … FOR UPDATE of the token first); the same token again without the credential (a
    reinstall) still makes a new device and retires the old one, through the rounds."""
    await anonymous_device(client)  # the apps' copy loaded, a pooled connection warm
    body = {"app": "portal", "platform": "android", "token": f"fcm-{uuid.uuid4().hex}"}
    statements.clear()
    first = await client.post("/v1/devices", json=body)
    assert first.status_code == 201, first.text
    assert kinds(statements) == ["BEGIN", "INSERT", "COMMIT"], statements
    old_headers = {"Authorization": f"Bearer {first.json()['device_credential']}"}

    statements.clear()
    again = await client.post("/v1/devices", json=body)
    assert again.status_code == 201 and again.json()["id"] != first.json()["id"], again.text
    assert "SELECT" in kinds(statements), statements  # the token's device, locked, then retired
    retired = await client.get("/v1/inbox/unread-count", headers=old_headers)
    assert retired.status_code == 401, retired.text
