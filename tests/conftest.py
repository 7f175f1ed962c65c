"""Test fixtures on real PostgreSQL and Redis.

Isolation: the schema is migrated once per run into a template database; every test that needs
the database gets its own copy (CREATE DATABASE … TEMPLATE, ~0.1 s), so tests can commit,
run concurrent transactions and hit the audit triggers exactly like production. The app
connects as the non-owner role ``chuong_app``, as it should in production. Redis uses a
dedicated logical database that is flushed before each test.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import AsyncIterator, Iterator

from cryptography.fernet import Fernet

from tests.support.redis_db import claim_redis_database

# Settings are read from the environment once; set them before any project module is imported.
os.environ.update(
    {
        "CHUONG_ENVIRONMENT": "test",
        "CHUONG_FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "CHUONG_AUDIT_HMAC_KEY": secrets.token_urlsafe(32),
        "CHUONG_JWT_KEYS": json.dumps(
            {"test-1": secrets.token_urlsafe(32), "test-0": secrets.token_urlsafe(32)}
        ),
        "CHUONG_JWT_ACTIVE_KID": "test-1",
        "CHUONG_TOKEN_PEPPER": secrets.token_urlsafe(32),
        # Generous limits so that ordinary tests never trip them; tests/ratelimit sets its own.
        "CHUONG_RATE_LIMIT_PER_ACCOUNT": "100000/minute",
        "CHUONG_RATE_LIMIT_PER_CLIENT": "100000/minute",
        "CHUONG_RATE_LIMIT_PER_IP": "100000/minute",
        "CHUONG_RATE_LIMIT_LOGIN_PER_IP": "100000/minute",
        "CHUONG_DEVICE_REGISTRATION_LIMIT_PER_NETWORK": "100000/minute",
        "CHUONG_DEVICE_REGISTRATION_LIMIT_GLOBAL": "100000/minute",
        "CHUONG_LOG_JSON": "false",
        "CHUONG_LOG_LEVEL": "WARNING",
        # Cheap argon2 in tests only; the algorithm and code path are the production ones.
        "CHUONG_ARGON2_TIME_COST": "1",
        "CHUONG_ARGON2_MEMORY_KIB": "8192",
        "CHUONG_ARGON2_PARALLELISM": "1",
    }
)

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core import clock, clock_sync
from core.db import configure_engine, dispose_engine, make_engine
from core.redis import close_redis, configure_redis
from tests.support.databases import TestDatabases


def pytest_configure(config: pytest.Config) -> None:
    """Each process that runs tests claims a Redis database of its own (tests/support/redis_db.py):
    the serial run, or each pytest-xdist worker. The xdist controller runs none and claims none:
    a lease per worker is enough of the 14."""
    controller = bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")
    if not controller:
        os.environ["CHUONG_REDIS_URL"] = os.environ.get("CHUONG_TEST_REDIS_URL") or claim_redis_database()


@pytest.fixture(scope="session")
def databases() -> Iterator[TestDatabases]:
    dbs = TestDatabases.from_env()
    dbs.prepare_template()
    yield dbs
    dbs.cleanup()


@pytest.fixture
async def database_url(databases: TestDatabases) -> AsyncIterator[str]:
    """A fresh migrated database for this test; the app's engine points at it."""
    name = await databases.create_copy()
    url = databases.app_url(name)
    configure_engine(make_engine(url, pool_size=5, max_overflow=10))
    try:
        yield url
    finally:
        await dispose_engine()
        databases.release(name)


@pytest.fixture
async def owner_engine(databases: TestDatabases, database_url: str) -> AsyncIterator[AsyncEngine]:
    """A superuser connection to this test's database (for tampering tests and inspection)."""
    engine = create_async_engine(databases.owner_url(database_url.rsplit("/", 1)[1]))
    yield engine
    await engine.dispose()


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(os.environ["CHUONG_REDIS_URL"], decode_responses=True)
    await client.flushdb()
    configure_redis(client)
    yield client
    await close_redis()


@pytest.fixture(autouse=True, scope="session")
def _enqueue_through_arq() -> None:
    """What transactions defer goes to arq after their commit, as the app factory (cli/asgi.py) and the
    worker's start-up arrange (core/jobs.py); tests also commit outside both."""
    from core.jobs import set_enqueuer
    from workers.queue import enqueue

    set_enqueuer(enqueue)


@pytest.fixture(autouse=True, scope="session")
def _inbox_follows_notifications() -> None:
    """A created notification writes its inbox work in the same transaction, as the API app
    factory and the worker's start-up arrange (notifications/on_created.py); tests also create
    notifications outside both."""
    from inbox import fanout
    from notifications.on_created import set_on_created

    set_on_created(fanout.schedule)


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock_sync.stop()  # a worker start-up a test ran without its shutdown keeps no task behind
    clock.reset()


@pytest.fixture(autouse=True)
def _no_first_page_handler_left() -> Iterator[None]:
    """A worker start-up a test ran without its shutdown leaves its first-page handler on this
    process's subscription: a later test's own announcement would then be sent by that lane, with
    the earlier test's providers, before the test claims the page itself (seen under xdist)."""
    yield
    from notifications import cancellation, first_pages

    cancellation.stop_hearing(first_pages.CHANNEL)


@pytest.fixture
async def app(database_url: str, redis: Redis):
    from cli.asgi import create_app

    return create_app(manage_resources=False)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.10", 51000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
