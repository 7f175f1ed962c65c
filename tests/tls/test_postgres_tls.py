"""TLS to PostgreSQL (CHUONG_DB_SSL_MODE=verify-full, core/tls.py), against a real server: a
scratch cluster with ssl = on, a certificate for "localhost" from a test CA, and a pg_hba.conf
that accepts TLS connections only. The right CA connects (and the server sees TLS); another CA,
or another host name than the certificate's, is refused; migrations and detached transactions
take the same settings."""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core import db
from core.config import get_settings
from tests.support.scratch_postgres import ScratchCluster, scratch_cluster
from tests.support.tls import CertFiles, issue

# Its module fixture (built once) is expensive: under pytest-xdist, its tests share one worker.
pytestmark = pytest.mark.xdist_group("postgres_tls")


@pytest.fixture(scope="module")
def server_certificate() -> tuple[Path, CertFiles]:
    # In the cluster's own directory, which the cluster removes (and hands to the server's account).
    base = Path(tempfile.mkdtemp(prefix="chuong-tls-pg-"))
    return base, issue(base / "tls", trustme.CA(), "localhost")


@pytest.fixture(scope="module")
def tls_cluster(server_certificate: tuple[Path, CertFiles]) -> Iterator[ScratchCluster]:
    base, files = server_certificate
    with scratch_cluster(
        directory=base,
        settings=["ssl = on", f"ssl_cert_file = '{files.cert}'", f"ssl_key_file = '{files.key}'"],
        # TLS or nothing: a connection that skipped TLS would be refused, not pass unnoticed.
        hba=["hostssl all all 127.0.0.1/32 trust", "hostnossl all all 0.0.0.0/0 reject"],
    ) as cluster:
        yield cluster


@pytest.fixture
def verify_full(monkeypatch: pytest.MonkeyPatch, server_certificate: tuple[Path, CertFiles]) -> Path:
    ca = server_certificate[1].ca
    monkeypatch.setattr(get_settings(), "db_ssl_mode", "verify-full")
    monkeypatch.setattr(get_settings(), "db_ssl_root_cert", str(ca))
    return ca


def url_of(cluster: ScratchCluster, host: str, database: str = "postgres") -> str:
    return make_url(cluster.url(database)).set(host=host).render_as_string(hide_password=False)


async def tls_version(url: str) -> str | None:
    engine = db.make_engine(url)
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                )
            ).one()
            return str(row.version) if row.ssl else None
    finally:
        await engine.dispose()


def certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


async def test_verify_full_with_the_right_ca_connects_over_tls(tls_cluster, verify_full) -> None:
    assert await tls_version(url_of(tls_cluster, "localhost")) in ("TLSv1.2", "TLSv1.3")


async def test_a_certificate_from_another_ca_is_refused(
    tls_cluster, verify_full, monkeypatch, tmp_path
) -> None:
    other = issue(tmp_path, trustme.CA(), "localhost")
    monkeypatch.setattr(get_settings(), "db_ssl_root_cert", str(other.ca))

    with pytest.raises(Exception, match="certificate verify failed") as refused:
        await tls_version(url_of(tls_cluster, "localhost"))

    error = certificate_error(refused.value)
    assert error is not None, refused.value
    assert "unable to get local issuer certificate" in error.verify_message


async def test_a_certificate_for_another_host_name_is_refused(tls_cluster, verify_full) -> None:
    # The certificate names "localhost"; 127.0.0.1 is the same server under another name.
    with pytest.raises(Exception, match="certificate verify failed") as refused:
        await tls_version(url_of(tls_cluster, "127.0.0.1"))

    error = certificate_error(refused.value)
    assert error is not None, refused.value
    assert "mismatch" in error.verify_message


async def test_the_default_prefer_mode_encrypts_but_checks_nothing(tls_cluster) -> None:
    """Why production wants verify-full: "prefer" takes any certificate for any name."""
    assert get_settings().db_ssl_mode == "prefer"
    assert await tls_version(url_of(tls_cluster, "127.0.0.1")) in ("TLSv1.2", "TLSv1.3")


async def test_detached_transactions_verify_too(tls_cluster, verify_full) -> None:
    """The detached pool is a second engine (core/db.py): it must not fall back to the default,
    which would accept the mismatching name."""
    db.configure_engine(db.make_engine(url_of(tls_cluster, "127.0.0.1")))
    try:
        with pytest.raises(Exception, match="certificate verify failed") as refused:
            async with db.detached_transaction() as session:
                await session.execute(text("SELECT 1"))
        assert certificate_error(refused.value) is not None, refused.value
    finally:
        await db.dispose_engine()


def test_migrations_verify_too(tls_cluster, verify_full) -> None:
    """`chuong migrate` builds its own engine (cli/migrations/env.py)."""
    from alembic import command

    from cli.migration_config import alembic_config

    tls_cluster.psql("CREATE DATABASE chuong_tls")
    with pytest.raises(Exception, match="certificate verify failed") as refused:
        command.upgrade(alembic_config(url_of(tls_cluster, "127.0.0.1", "chuong_tls")), "head")
    assert certificate_error(refused.value) is not None, refused.value

    command.upgrade(alembic_config(url_of(tls_cluster, "localhost", "chuong_tls")), "head")

    assert tls_cluster.psql("SELECT count(*) FROM alembic_version", database="chuong_tls").strip() == "1"
