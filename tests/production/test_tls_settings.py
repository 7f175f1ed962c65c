"""The TLS settings (core/config.py, core/production.py): contradictions are refused in every
environment, production refuses files it cannot load and URL options that would bypass the
settings, and warns, at every start, about database or Redis connections to another host
without a verified certificate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import structlog
import trustme
from pydantic import ValidationError

from core.config import Settings
from core.production import log_production_warnings, production_problems, production_warnings
from tests.support.tls import issue


def settings_of(values: dict[str, Any]) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def certificates(tmp_path: Path):
    ca = trustme.CA()
    return issue(tmp_path / "server", ca, "db.internal"), issue(
        tmp_path / "client", ca, "chuong", stem="client"
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"db_ssl_root_cert": "/etc/ssl/db-ca.pem"}, "CHUONG_DB_SSL_MODE is not verify-full"),
        ({"redis_ssl_ca_file": "/etc/ssl/redis-ca.pem"}, "is not rediss://"),
        (
            {"redis_url": "rediss://redis.internal:6380/0", "redis_ssl_cert_file": "/etc/ssl/c.pem"},
            "go together",
        ),
    ],
)
def test_settings_that_contradict_each_other_are_refused_everywhere(
    production_values, changes, message
) -> None:
    with pytest.raises(ValidationError, match=message):
        settings_of({**production_values, "environment": "development", **changes})


def test_verified_tls_to_both_passes_and_warns_of_nothing(production_values, certificates) -> None:
    server, client = certificates
    settings = settings_of(
        {
            **production_values,
            "db_ssl_mode": "verify-full",
            "db_ssl_root_cert": str(server.ca),
            "redis_url": "rediss://redis.internal:6380/0",
            "redis_ssl_ca_file": str(server.ca),
            "redis_ssl_cert_file": str(client.cert),
            "redis_ssl_key_file": str(client.key),
        }
    )
    assert production_problems(settings) == []
    assert production_warnings(settings) == []


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        (
            {"db_ssl_mode": "verify-full", "db_ssl_root_cert": "/nonexistent/ca.pem"},
            "CHUONG_DB_SSL_ROOT_CERT",
        ),
        (
            {"redis_url": "rediss://redis.internal/0", "redis_ssl_ca_file": "/nonexistent/ca.pem"},
            "CHUONG_REDIS_SSL_CA_FILE",
        ),
        (
            {
                "redis_url": "rediss://redis.internal/0",
                "redis_ssl_cert_file": "/nonexistent/c.pem",
                "redis_ssl_key_file": "/nonexistent/c.key",
            },
            "CHUONG_REDIS_SSL_CERT_FILE",
        ),
        # URL options would decide TLS behind the settings' back (no verification at all).
        (
            {"database_url": "postgresql+asyncpg://chuong_app:Xk9vQ2mR7tLp@db.internal/chuong?ssl=require"},
            "CHUONG_DATABASE_URL",
        ),
        ({"redis_url": "rediss://redis.internal/0?ssl_cert_reqs=none"}, "CHUONG_REDIS_URL"),
    ],
)
def test_tls_settings_that_cannot_work_stop_production(production_values, changes, named) -> None:
    problems = production_problems(settings_of({**production_values, **changes}))
    assert any(problem.startswith(named) for problem in problems), problems


def test_a_ca_file_that_is_not_a_certificate_stops_production(production_values, tmp_path) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate")
    settings = settings_of({**production_values, "db_ssl_mode": "verify-full", "db_ssl_root_cert": str(junk)})
    assert [p for p in production_problems(settings) if p.startswith("CHUONG_DB_SSL_ROOT_CERT")]


@pytest.mark.parametrize(
    ("database_url", "redis_url", "warned"),
    [
        # Another host without a verified certificate: the compose stack's names, or any other.
        (
            "postgresql+asyncpg://chuong_app:pw@postgres:5432/chuong",
            "redis://redis:6379/0",
            ["DATABASE", "REDIS"],
        ),
        ("postgresql+asyncpg://chuong_app:pw@10.0.0.7/chuong", "rediss://10.0.0.8/0", ["DATABASE"]),
        # This machine: loopback, localhost or a Unix socket never cross a network.
        ("postgresql+asyncpg://chuong_app:pw@127.0.0.1/chuong", "redis://localhost:6379/0", []),
        ("postgresql+asyncpg://chuong_app:pw@/chuong?host=/run/postgresql", "redis://[::1]:6379/0", []),
        # A failover pair (multi-host URL): each remote server is warned about.
        (
            "postgresql+asyncpg://chuong_app:pw@/chuong?host=db1:5432&host=db2:5432&target_session_attrs=read-write",
            "redis://localhost:6379/0",
            ["DATABASE", "DATABASE"],
        ),
        (
            "postgresql+asyncpg://chuong_app:pw@/chuong?host=127.0.0.1:5432&host=localhost:5433",
            "redis://localhost:6379/0",
            [],
        ),
    ],
)
def test_unverified_connections_across_hosts_are_warned_about(
    production_values, database_url, redis_url, warned
) -> None:
    settings = settings_of({**production_values, "database_url": database_url, "redis_url": redis_url})
    warnings = production_warnings(settings)
    assert [w.split(":")[0] for w in warnings] == [f"CHUONG_{name}_URL" for name in warned]
    # A warning, never a refusal: one host's private network (compose) is a fair choice.
    assert not [p for p in production_problems(settings) if "without" in p]


def test_warnings_are_logged_in_production_only(production_values) -> None:
    values = {**production_values, "redis_url": "redis://redis:6379/0"}
    with structlog.testing.capture_logs() as logs:
        log_production_warnings(settings_of(values))
        log_production_warnings(settings_of({**values, "environment": "development"}))
    assert [entry["event"] for entry in logs] == ["production_warning", "production_warning"]
    assert "db.internal" in logs[0]["warning"] and "redis" in logs[1]["warning"]
