"""TLS to PostgreSQL and Redis, from settings (docs/security.md "TLS and key rotation").

Every connection the service opens takes its TLS options from here: the request and detached
database pools (core/db.py), the migrations' engine, the backup drill's source, the shared Redis
client and the pub/sub listeners (core/redis.py) and arq's pool (workers/queue.py); the rate
limiter shares the Redis client's pool. tests/architecture/test_tls_everywhere.py keeps new
connections from bypassing them.

Verification is never optional once TLS is on: the chain must lead to the configured CA (or the
system store) and the certificate must name the host of the URL. Python's default context (3.10
and later) already refuses anything older than TLS 1.2.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

from core.config import Settings

REDIS_TLS_SCHEME = "rediss"


def postgres_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The ``ssl`` argument of asyncpg's connect, or None to leave asyncpg's default ("prefer").
    asyncpg given a context never falls back to plain text."""
    if settings.db_ssl_mode != "verify-full":
        return None
    # verify-full: CERT_REQUIRED and check_hostname are the defaults of this context. With a CA
    # file only that CA is trusted (a private PKI), without one the system's store.
    return ssl.create_default_context(cafile=settings.db_ssl_root_cert or None)


def postgres_tls_connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg connection arguments for TLS: merge into ``create_async_engine(connect_args=...)``."""
    context = postgres_ssl_context(settings)
    return {} if context is None else {"ssl": context}


def is_tls_redis_url(url: str) -> bool:
    return urlsplit(url).scheme == REDIS_TLS_SCHEME


def redis_tls_options(settings: Settings) -> dict[str, Any]:
    """redis-py keyword arguments for ``Redis.from_url(settings.redis_url, ...)``; empty for a
    redis:// URL (redis-py's plain connection refuses ssl_* arguments)."""
    if not is_tls_redis_url(settings.redis_url):
        return {}
    return {
        "ssl_cert_reqs": "required",
        # redis-py 5 leaves the host name unchecked unless told: any certificate of the CA would do.
        "ssl_check_hostname": True,
        "ssl_ca_certs": settings.redis_ssl_ca_file or None,
        "ssl_certfile": settings.redis_ssl_cert_file or None,
        "ssl_keyfile": settings.redis_ssl_key_file or None,
    }
