"""`chuong backup drill` for real: a scratch PostgreSQL cluster archives its WAL with pgBackRest
into two encrypted repositories, is backed up into each, and the drill restores the newest backup,
verifies the audit chain on the restored copy and compares row counts (D-42).

The machine's shared cluster is never touched: the source is a scratch cluster on another port,
created and removed here (tests/support/scratch_postgres.py).
"""

from __future__ import annotations

import configparser
import datetime as dt
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from auth.audit import writer
from cli.migration_config import alembic_config
from tests.support.databases import APP_ROLE
from tests.support.scratch_postgres import ScratchCluster, give_to_os_user, run, scratch_cluster
from tests.support.terminal import run_with_terminal_stderr

# pgBackRest is a Debian package that scripts/dev.sh installs: a missing one fails, never skips.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "chuong"


@dataclass(frozen=True)
class Source:
    cluster: ScratchCluster
    config: Path
    base: Path

    @property
    def owner_url(self) -> str:
        return self.cluster.url(DATABASE)

    def pgbackrest(self, *args: str) -> str:
        return run(["pgbackrest", f"--config={self.config}", "--stanza=chuong", *args], timeout=300)


def _pgbackrest_conf(base: Path, port: int) -> str:
    """The shipped example (deploy/pgbackrest/pgbackrest.conf: two encrypted repositories,
    asynchronous archiving, self-contained fulls), with this test's paths and passphrases."""
    config = configparser.ConfigParser(interpolation=None)
    config.optionxform = str  # type: ignore[assignment,method-assign]
    config.read(ROOT / "deploy" / "pgbackrest" / "pgbackrest.conf", encoding="utf-8")
    overrides = {
        "repo1-path": f"{base}/repo1",
        "repo1-cipher-pass": "first-repository-passphrase",
        "repo2-path": f"{base}/repo2",
        "repo2-cipher-pass": "second-repository-passphrase",
        "spool-path": f"{base}/spool",
        "log-path": f"{base}/log",
        "lock-path": f"{base}/lock",
        "log-level-file": "off",
    }
    for key, value in overrides.items():
        assert key in config["global"] or key in ("lock-path",), key
        config["global"][key] = value
    config["chuong"] = {"pg1-path": f"{base}/pg/data", "pg1-port": str(port), "pg1-socket-path": f"{base}/pg"}
    out = io.StringIO()
    config.write(out)
    return out.getvalue()


@pytest.fixture
def source() -> Iterator[Source]:
    # Not pytest's tmp_path: its parent is private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="chuong-backup-"))
    give_to_os_user(base)
    config = base / "pgbackrest.conf"
    archive = f"archive_command = 'pgbackrest --config={config} --stanza=chuong archive-push %p'"
    with scratch_cluster(
        directory=base / "pg", settings=["archive_mode = on", "wal_level = replica", archive]
    ) as cluster:
        config.write_text(_pgbackrest_conf(base, cluster.port), encoding="utf-8")
        give_to_os_user(base)
        cluster.psql(f"CREATE ROLE {APP_ROLE} LOGIN")
        cluster.psql(f"CREATE DATABASE {DATABASE}")
        command.upgrade(alembic_config(cluster.url(DATABASE)), "head")
        src = Source(cluster=cluster, config=config, base=base)
        src.pgbackrest("stanza-create")
        try:
            yield src
        finally:
            shutil.rmtree(base, ignore_errors=True)


async def _write_audit_rows(url: str, count: int) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with AsyncSession(engine) as session, session.begin():
            for n in range(count):
                writer.record(
                    session, action="test.drill", object_type="row", object_id=n, actor_kind="system"
                )
    finally:
        await engine.dispose()


def _drill_argv(src: Source, *args: str, scratch: Path) -> list[str]:
    return [sys.executable, "-m", "cli", "backup", "drill", f"--pgbackrest-config={src.config}",
            f"--scratch-dir={scratch}", "--json", *args]  # fmt: skip


def _drill(src: Source, *args: str, scratch: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHUONG_DATABASE_URL": src.owner_url}
    return subprocess.run(  # noqa: S603 (our own CLI)
        _drill_argv(src, *args, scratch=scratch),
        env=env, capture_output=True, text=True, timeout=600, check=False, cwd=ROOT,
    )  # fmt: skip


def _drill_on_a_terminal(src: Source, *args: str, scratch: Path) -> subprocess.CompletedProcess[str]:
    """The drill as an operator runs it by hand: stderr a terminal (its steps shown), stdout a pipe."""
    env = {**os.environ, "CHUONG_DATABASE_URL": src.owner_url, "TERM": "xterm"}
    env.pop("CI", None)
    done = run_with_terminal_stderr(_drill_argv(src, *args, scratch=scratch), env=env, cwd=ROOT, timeout=600)
    return subprocess.CompletedProcess([], done.returncode, stdout=done.stdout, stderr=done.terminal)


def _record(src: Source, *repos: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHUONG_DATABASE_URL": src.owner_url}
    return subprocess.run(  # noqa: S603 (our own CLI)
        [sys.executable, "-m", "cli", "backup", "record", f"--pgbackrest-config={src.config}",
         *(f"--repo={repo}" for repo in repos)],
        env=env, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
    )  # fmt: skip


async def _maintenance_runs(url: str) -> dict[tuple[str, str], tuple[dt.datetime | None, dt.datetime | None]]:
    """(task, repo) → (last success, last failure) as the live database recorded them."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT task, repo, last_success_at, last_failure_at FROM maintenance_runs")
            )
            return {(row.task, row.repo): (row.last_success_at, row.last_failure_at) for row in rows}
    finally:
        await engine.dispose()


def _scratch(src: Source) -> Path:
    scratch = src.base / "drills"
    scratch.mkdir(exist_ok=True)
    give_to_os_user(scratch)
    return scratch


async def test_the_drill_restores_each_repository_verifies_the_chain_and_matches_the_counts(source):
    await _write_audit_rows(source.owner_url, 25)
    source.pgbackrest("--repo=1", "--type=full", "backup")
    source.pgbackrest("--repo=2", "--type=full", "backup")
    # Written after both backups: only WAL replay from the archive can bring these back.
    await _write_audit_rows(source.owner_url, 7)
    source.pgbackrest("check")  # switches the WAL segment and waits until it is archived
    scratch = _scratch(source)
    # When each repository's newest backup ended, as its catalogue says, for the stale-backup alert.
    recorded = _record(source, 1, 2)
    assert recorded.returncode == 0, recorded.stderr + recorded.stdout
    info = json.loads(source.pgbackrest("--output=json", "info"))[0]
    stops = {b["database"]["repo-key"]: b["timestamp"]["stop"] for b in info["backup"]}
    runs = await _maintenance_runs(source.owner_url)
    for repo in (1, 2):
        success, failure = runs[("backup", str(repo))]
        assert success is not None and success.timestamp() == stops[repo] and failure is None

    for repo in (1, 2):
        if repo == 1:
            done = _drill_on_a_terminal(source, f"--repo={repo}", scratch=scratch)
            for step in ("restoring backup", "replaying the archived WAL", "verifying the audit chain"):
                assert step in done.stderr, done.stderr
        else:
            done = _drill(source, f"--repo={repo}", scratch=scratch)
            assert done.stderr == ""  # off a terminal, no progress: the report alone
        assert done.returncode == 0, done.stderr + done.stdout
        report = json.loads(done.stdout)
        assert report["ok"] is True
        assert report["backup"]["repo"] == repo
        assert report["audit"]["ok"] is True and report["audit"]["rows_checked"] == 32
        tables = {row["table"]: row for row in report["tables"]}
        assert tables["audit_log"]["restored"] == tables["audit_log"]["source"] == 32
        assert "users" in tables and "deliveries" in tables
        # The drills' and the backups' own records are written to the live database after the
        # backups were taken: the one table expected to differ.
        assert all(
            row["difference"] == 0 for row in report["tables"] if row["table"] != "maintenance_runs"
        ), report["tables"]
        assert report["missing_tables"] == []
        assert {"restore", "replay and start", "audit verification", "row counts", "total"} <= set(
            report["seconds"]
        )
        # The restored copy and its directory are gone; nothing else listens for it.
        assert list(scratch.iterdir()) == []

    runs = await _maintenance_runs(source.owner_url)
    assert all(runs[("restore_drill", str(repo))][0] is not None for repo in (1, 2))
    # Both repositories are encrypted (each with its own passphrase, in pgbackrest.conf).
    assert [(repo["key"], repo["cipher"]) for repo in info["repo"]] == [
        (1, "aes-256-cbc"),
        (2, "aes-256-cbc"),
    ]


async def test_a_tampered_audit_log_in_the_backup_fails_the_drill_with_the_broken_row(source):
    await _write_audit_rows(source.owner_url, 10)
    engine = create_async_engine(source.owner_url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("SET LOCAL session_replication_role = replica")
            )  # past the append-only trigger
            await conn.execute(text("UPDATE audit_log SET action = 'test.rewritten' WHERE seq = 4"))
    finally:
        await engine.dispose()
    source.pgbackrest("--repo=1", "--type=full", "backup")

    done = _drill(source, "--repo=1", scratch=_scratch(source))
    assert done.returncode == 1, done.stderr + done.stdout
    report = json.loads(done.stdout)
    assert report["ok"] is False
    assert report["audit"]["ok"] is False and report["audit"]["first_broken_seq"] == 4
    success, failure = (await _maintenance_runs(source.owner_url))[("restore_drill", "1")]
    assert success is None and failure is not None


async def test_a_repository_without_a_backup_is_reported_not_drilled(source):
    done = _drill(source, "--repo=2", scratch=_scratch(source))
    assert done.returncode == 2
    assert "holds no backup" in done.stderr
    recorded = _record(source, 2)
    assert recorded.returncode == 2 and "holds no backup" in recorded.stderr
    # The drill that could not run counts as failed; no backup is recorded.
    runs = await _maintenance_runs(source.owner_url)
    assert list(runs) == [("restore_drill", "2")]
    success, failure = runs[("restore_drill", "2")]
    assert success is None and failure is not None
