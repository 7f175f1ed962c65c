"""Async SQLAlchemy engine, declarative base and session factory.

Services take an ``AsyncSession`` and never commit; the transport (request, job, CLI) owns the
transaction and commits once at the end.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

from sqlalchemy import URL, DateTime, MetaData, event, func, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, InvalidRequestError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.clock import utcnow
from core.config import get_settings
from core.errors import ChuongError
from core.tls import postgres_tls_connect_args

__all__ = [
    "Base",
    "Timestamps",
    "UUIDPrimaryKey",
    "abandon",
    "allow_long_statements",
    "autocommitted",
    "connect_args",
    "detached_transaction",
    "flush_unique",
    "get_autocommit_sessionmaker",
    "get_engine",
    "get_sessionmaker",
    "is_bounded_wait",
    "is_write_conflict",
    "lost_connection",
    "make_engine",
    "transaction",
    "utcnow",
]

# Deterministic constraint names so that Alembic migrations are reviewable and reversible.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: DateTime(timezone=True)}


class UUIDPrimaryKey:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


class Timestamps:
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


def connect_args(*, statement_ms: int, lock_ms: int, idle_in_transaction_ms: int) -> dict[str, Any]:
    """asyncpg connection arguments that bound every wait of a connection on the server side.

    A request that waits on a lock forever (its own, or a stuck peer's) holds a pooled connection
    forever; a handful of them stop the whole API. With these, PostgreSQL ends the wait itself:
    a statement or a lock wait past its bound fails with an error, and a transaction left idle
    (a crashed handler, a task awaiting something else while holding locks) is terminated, which
    releases its locks. They are set per connection rather than on the role, so that every
    deployment gets them without a DBA step and migrations (the owner's engine) stay unbounded.
    """
    return {
        "server_settings": {
            "statement_timeout": str(statement_ms),
            "lock_timeout": str(lock_ms),
            "idle_in_transaction_session_timeout": str(idle_in_transaction_ms),
        }
    }


# SQLSTATEs of the bounds above: query_canceled (statement_timeout) and lock_not_available
# (lock_timeout, or NOWAIT); of a wait PostgreSQL ended itself: deadlock_detected (two
# transactions each holding what the other waits for; one is rolled back) and
# serialization_failure; and of a server that refuses a connection for now: too_many_connections
# (max_connections or a role's CONNECTION LIMIT reached) and cannot_connect_now (starting up,
# shutting down, a standby in recovery). Each leaves the transaction rolled back, nothing of it
# written: retrying is safe, so a deadlock the code did not foresee is a 503, not a 500.
_BOUNDED_WAIT_SQLSTATES = frozenset({"57014", "55P03", "40P01", "40001", "53300", "57P03"})


def is_bounded_wait(exc: BaseException) -> bool:
    """Did ``exc`` end a wait that the service bounds on purpose (pool checkout, statement or lock
    timeout) or that PostgreSQL ended (a deadlock), or did PostgreSQL refuse a new connection for
    now (too many connections, starting up)? Such a request changed nothing and can be retried:
    transports answer 503."""
    if isinstance(exc, SQLAlchemyTimeoutError):
        return True
    if isinstance(exc, ConnectionError):
        # PostgreSQL unreachable (stopped, restarting, failing over): asyncpg's connect raises the
        # socket's error unwrapped. No statement ran. The API reaches nothing else by socket
        # inside a request but Redis, whose client raises its own (never a builtin) errors.
        return True
    if isinstance(exc, DBAPIError):
        original = getattr(exc, "orig", None)
        sqlstate = getattr(original, "sqlstate", None) or getattr(
            getattr(original, "__cause__", None), "sqlstate", None
        )
        return sqlstate in _BOUNDED_WAIT_SQLSTATES
    return False


# unique_violation and foreign_key_violation: a row the request meant to write exists by now (a
# concurrent request wrote it), or a row it refers to is gone (a purge deleted it meanwhile).
_CONFLICT_SQLSTATES = frozenset({"23505", "23503"})


def is_write_conflict(exc: BaseException) -> bool:
    """Did a concurrent change make the request's write impossible (a key taken, a referenced
    row deleted, between the request's checks and its write)? Its transaction is rolled back,
    nothing of it written: transports answer 409 rather than 500. Checks that can foresee the
    case answer more precisely (``flush_unique``); this is the net under the ones that cannot."""
    if not isinstance(exc, IntegrityError):
        return False
    original = getattr(exc, "orig", None)
    sqlstate = getattr(original, "sqlstate", None) or getattr(
        getattr(original, "__cause__", None), "sqlstate", None
    )
    return sqlstate in _CONFLICT_SQLSTATES


def lost_connection(exc: BaseException) -> bool:
    """Did the database connection die under a statement (the server crashed, restarted or failed
    over mid-request)? Unlike a bounded wait, the request's outcome may be unknown if the COMMIT
    itself was cut: transports answer 503 ``unavailable`` and ask for a retry with the same
    Idempotency-Key, which makes a repeat harmless."""
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


# A pooled connection used this recently is handed out without a ping. SQLAlchemy's pre-ping
# checks every checkout, and with asyncpg outside autocommit a ping is three round trips (BEGIN,
# an empty statement, ROLLBACK): under a read surge that was more than the request's own
# queries. A connection idle for longer (the server may have restarted or dropped it meanwhile)
# is still pinged, and replaced if the ping fails; one that breaks within this window fails its
# request once (503/500) and the pool is refilled, as with any connection lost mid-request.
PING_AFTER_IDLE_SECONDS = 2.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    dialect = engine.sync_engine.dialect

    @event.listens_for(engine.sync_engine.pool, "checkin")
    def returned(dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        returned_at = record.info.get("returned_at")
        if returned_at is None or time.monotonic() - returned_at < PING_AFTER_IDLE_SECONDS:
            return  # just connected, or in use a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("pooled connection failed its ping") from exc  # pool retries


def make_engine(url: str | URL | None = None, **pool: Any) -> AsyncEngine:
    settings = get_settings()
    options: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        # A request waits this long for a free connection, then fails (503) instead of queueing.
        "pool_timeout": settings.db_pool_timeout_seconds,
        "pool_pre_ping": False,  # _ping_when_idle instead
        **pool,
    }
    engine = create_async_engine(
        url or settings.database_url,
        connect_args={
            **connect_args(
                statement_ms=settings.db_statement_timeout_ms,
                lock_ms=settings.db_lock_timeout_ms,
                idle_in_transaction_ms=settings.db_idle_in_transaction_timeout_ms,
            ),
            # TLS (CHUONG_DB_SSL_MODE): the request pool and the detached pool both come from here.
            **postgres_tls_connect_args(settings),
        },
        **options,
    )
    if not options["pool_pre_ping"]:
        _ping_when_idle(engine)
    return engine


_engine: AsyncEngine | None = None
_sessionmaker: async_sessionmaker[AsyncSession] | None = None
_autocommit_sessionmaker: async_sessionmaker[AsyncSession] | None = None
# Detached transactions (see ``detached_transaction``) have a small pool of their own.
_detached_engine: AsyncEngine | None = None
_detached_sessionmaker: async_sessionmaker[AsyncSession] | None = None


def configure_engine(engine: AsyncEngine | None) -> None:
    """Use ``engine`` for this process (tests point each test at its own database). The pool of
    detached transactions is rebuilt for the same database on first use."""
    global _engine, _sessionmaker, _autocommit_sessionmaker, _detached_engine, _detached_sessionmaker
    _engine = engine
    _sessionmaker = async_sessionmaker(engine, expire_on_commit=False) if engine is not None else None
    _autocommit_sessionmaker = None
    if _detached_engine is not None:
        # Closed lazily: its connections may still be finishing a write on this loop.
        _detached_engine.sync_engine.dispose(close=False)
    _detached_engine = None
    _detached_sessionmaker = None


def get_engine() -> AsyncEngine:
    if _engine is None:
        configure_engine(make_engine())
    assert _engine is not None
    return _engine


def get_sessionmaker() -> async_sessionmaker[AsyncSession]:
    if _sessionmaker is None:
        configure_engine(get_engine())
    assert _sessionmaker is not None
    return _sessionmaker


def get_autocommit_sessionmaker() -> async_sessionmaker[AsyncSession]:
    """Sessions on the same pool whose statements each commit on their own: no BEGIN or COMMIT
    round trips. Only for work that reads (or whose single writes need no transaction around
    them) and writes no audit rows: the audit chain's lock lives as long as a transaction."""
    global _autocommit_sessionmaker
    if _autocommit_sessionmaker is None:
        autocommit = get_engine().execution_options(isolation_level="AUTOCOMMIT")
        _autocommit_sessionmaker = async_sessionmaker(autocommit, expire_on_commit=False)
    return _autocommit_sessionmaker


async def dispose_engine() -> None:
    global _engine, _sessionmaker, _autocommit_sessionmaker, _detached_engine, _detached_sessionmaker
    if _engine is not None:
        await _engine.dispose()
    if _detached_engine is not None:
        await _detached_engine.dispose()
    _engine = _detached_engine = None
    _sessionmaker = _autocommit_sessionmaker = _detached_sessionmaker = None


def _get_detached_sessionmaker() -> async_sessionmaker[AsyncSession]:
    global _detached_engine, _detached_sessionmaker
    if _detached_sessionmaker is None:
        settings = get_settings()
        _detached_engine = make_engine(
            get_engine().url,
            pool_size=settings.db_detached_pool_size,
            max_overflow=settings.db_detached_pool_size,
        )
        _detached_sessionmaker = async_sessionmaker(_detached_engine, expire_on_commit=False)
    return _detached_sessionmaker


@asynccontextmanager
async def detached_transaction() -> AsyncIterator[AsyncSession]:
    """A transaction independent of the current request's, for what must outlive a failing
    request (a failed sign-in's audit row and counter, a refusal, a revocation).

    It draws from a small pool of its own. Taken from the request pool, a burst of failing
    requests larger than that pool would leave each holding its request connection while it
    waits for a second one that never frees: the pool waiting on itself. Detached writes hold
    their connection only for one short write and wait on nothing but row and audit-chain locks
    (and the caller must not hold the rows it writes: see ``abandon``)."""
    async with _committed(_get_detached_sessionmaker()) as session:
        yield session


async def flush_unique(session: AsyncSession, *, conflict: ChuongError) -> None:
    """Flush inside a savepoint and turn a unique violation into ``conflict`` (409): the rest of
    the request's transaction stays usable, and the refusal can still be audited."""
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise conflict from exc


async def allow_long_statements(session: AsyncSession, *, seconds: int) -> None:
    """Raise this transaction's statement bound for maintenance work known to be long (a purge
    of millions of rows); the lock and idle bounds stay. Ends with the transaction."""
    await session.execute(text(f"SET LOCAL statement_timeout = {int(seconds) * 1000}"))


async def abandon(session: AsyncSession) -> None:
    """Roll back a failing request's transaction now, releasing its row locks, before work that
    must outlive the request (a failure counter, a revocation) runs in a transaction of its own.

    A second transaction that touches a row the first still holds would wait for it while the
    first waits for the second to finish: no deadlock detector sees that. The session stays
    usable: what it had loaded is read again (a rollback expires it, and an expired attribute
    cannot load lazily under asyncio), so a transport may still render the signed-in account
    on its error page. Failure paths only, with a handful of objects loaded.
    """
    if not session.in_transaction():
        return
    loaded = list(session.identity_map.values())
    await session.rollback()
    for instance in loaded:
        if instance not in session:  # inserted by the rolled-back transaction
            continue
        try:
            await session.refresh(instance)
        except InvalidRequestError:  # deleted meanwhile
            session.expunge(instance)


@asynccontextmanager
async def autocommitted() -> AsyncIterator[AsyncSession]:
    """A session whose statements each commit on their own (``get_autocommit_sessionmaker``):
    one round trip per statement, where a transaction adds BEGIN and COMMIT. For reads, and for
    a single statement that is atomic by itself."""
    async with get_autocommit_sessionmaker()() as session:
        yield session


@asynccontextmanager
async def transaction() -> AsyncIterator[AsyncSession]:
    """A session whose work commits when the block exits normally and rolls back otherwise."""
    async with _committed(get_sessionmaker()) as session:
        yield session


@asynccontextmanager
async def _committed(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with maker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
