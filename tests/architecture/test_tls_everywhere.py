"""Every connection to PostgreSQL and Redis takes the TLS settings (core/tls.py): the shipped code
opens them only in the few places that apply them. A new ``Redis.from_url`` or
``create_async_engine`` elsewhere would connect without CHUONG_DB_SSL_MODE or the Redis CA and host
name check; make it through ``core.redis.new_redis_client`` or ``core.db.make_engine`` instead
(tests/tls/ checks the places listed here against real TLS servers)."""

from __future__ import annotations

import ast

from tests.architecture.planted import ROOT, config

# What the wheel ships (pyproject's package list; test_distribution.py checks the wheel against it).
SHIPPED = tuple(
    sorted(pattern.rstrip("*") for pattern in config()["tool"]["setuptools"]["packages"]["find"]["include"])
)

# Callables that open connections, and the only modules allowed to call them.
ALLOWED = {
    "from_url": {"core/redis.py"},  # Redis.from_url: new_redis_client, with redis_tls_options
    "Redis": set(),
    "StrictRedis": set(),
    "ConnectionPool": set(),
    "create_async_engine": {
        "core/db.py",
        "cli/migrations/env.py",
        "cli/backup_drill.py",
        "auth/audit/cli.py",
        "core/maintenance.py",
    },
    "create_engine": set(),
    # Direct driver connections; engines go through SQLAlchemy (engine.connect() is not one).
    "asyncpg.connect": set(),
    "asyncpg.create_pool": set(),
    "psycopg.connect": set(),
    "create_pool": {"workers/queue.py"},  # arq, with redis_settings()
    "from_dsn": {"workers/queue.py"},  # arq's RedisSettings, then the TLS options
    "RedisSettings": set(),
    # limits' storage: the rate limits now run one script on the shared client (auth/ratelimit.py).
    "RedisStorage": set(),
    # A Sentinel-managed client: only core/redis.py, with the URL's database and credentials.
    "Sentinel": {"core/redis.py"},
}


def _called_names(call: ast.Call) -> set[str]:
    """``f`` for ``f(...)``; ``f`` and ``module.f`` for ``module.f(...)``."""
    if isinstance(call.func, ast.Name):
        return {call.func.id}
    if isinstance(call.func, ast.Attribute):
        names = {call.func.attr}
        if isinstance(call.func.value, ast.Name):
            names.add(f"{call.func.value.id}.{call.func.attr}")
        return names
    return set()


def _connection_calls() -> list[tuple[str, str, int]]:
    found = []
    for package in SHIPPED:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "/migrations/versions/" in relative:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call):
                    found += [(name, relative, node.lineno) for name in _called_names(node) & ALLOWED.keys()]
    return found


def test_connections_are_opened_only_where_tls_is_applied() -> None:
    stray = [
        f"{relative}:{line} calls {name}"
        for name, relative, line in _connection_calls()
        if relative not in ALLOWED[name]
    ]
    assert not stray, stray


def test_the_allowed_places_still_open_connections() -> None:
    """A place that no longer connects comes off the list (it would hide a new one there)."""
    used = {(name, relative) for name, relative, _ in _connection_calls()}
    stale = sorted(
        (name, relative)
        for name, places in ALLOWED.items()
        for relative in places
        if (name, relative) not in used
    )
    assert not stale, stale
