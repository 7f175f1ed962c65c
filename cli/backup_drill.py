"""``chuong backup drill``: prove that the latest backup restores (D-42).

1. ask pgBackRest for the newest complete backup of the chosen repository;
2. restore it, with every WAL segment archived after it, into a scratch directory;
3. start it as a throw-away server (a Unix socket in the scratch directory, no TCP, trust
   authentication on that socket only) and wait until recovery has replayed the archive;
4. verify the audit hash chain on the restored copy (the same check as ``chuong audit verify``);
5. count the rows of every table of the schema in the restored copy and in the source;
6. stop the scratch server, remove the directory, and print a report with the time each step took.

The restored copy gets a configuration of the drill's own (``config_file``): the source's
postgresql.conf may live outside the data directory (Debian) and name paths, libraries or TLS
files this host lacks; ``hot_standby=off`` also lets a smaller machine replay a bigger primary's WAL.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from auth.audit.verify import VerifyResult, export_checkpoint, verify_chain
from cli.pgbackrest import BackupError, BackupSet, PgBackRest, postgres_bindir
from core.config import get_settings
from core.db import Base
from core.progress import QUIET, Tracker
from core.tls import postgres_tls_connect_args

SOCKET_PORT = 5432  # names the socket file only: the socket lives in the drill's own directory


@dataclass(frozen=True)
class TableCount:
    table: str
    source: int | None
    restored: int | None

    @property
    def difference(self) -> int | None:
        if self.source is None or self.restored is None:
            return None
        return self.restored - self.source


@dataclass
class DrillReport:
    backup: BackupSet
    seconds: dict[str, float] = field(default_factory=dict)
    audit: VerifyResult | None = None
    counts: list[TableCount] = field(default_factory=list)

    @property
    def missing_tables(self) -> list[str]:
        return [c.table for c in self.counts if c.restored is None]

    @property
    def ok(self) -> bool:
        return self.audit is not None and self.audit.ok and not self.missing_tables

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "backup": asdict(self.backup),
            "seconds": {step: round(value, 2) for step, value in self.seconds.items()},
            "audit": self.audit.as_dict() if self.audit else None,
            "tables": [
                {"table": c.table, "source": c.source, "restored": c.restored, "difference": c.difference}
                for c in self.counts
            ],
            "missing_tables": self.missing_tables,
        }

    def lines(self) -> list[str]:
        b = self.backup
        stopped = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(b.stopped_at))
        out = [
            f"backup {b.label} ({b.kind}) from repository {b.repo}, finished {stopped}",
            "time: " + ", ".join(f"{step} {value:.1f} s" for step, value in self.seconds.items()),
            "audit on the restored copy: " + (self.audit.message if self.audit else "not checked"),
            f"{'table':<32} {'source':>12} {'restored':>12} {'difference':>10}",
        ]
        for c in self.counts:
            restored = "MISSING" if c.restored is None else str(c.restored)
            diff = "" if c.difference in (None, 0) else f"{c.difference:+d}"
            out.append(
                f"{c.table:<32} {c.source if c.source is not None else '-':>12} {restored:>12} {diff:>10}"
            )
        out.append(
            "rows written after the last archived WAL segment show as differences; a live source moves on"
        )
        out.append("drill passed" if self.ok else "DRILL FAILED")
        return out


@dataclass(frozen=True)
class DrillOptions:
    source_url: str
    pgbackrest: PgBackRest
    repo: int = 1
    scratch_parent: Path | None = None
    pg_bindir: Path | None = None
    keep: bool = False
    start_timeout_seconds: int = 3600


def _drill_config(scratch: Path, data: Path, socket_dir: Path) -> Path:
    hba = scratch / "pg_hba.conf"
    hba.write_text("local all all trust\n", encoding="utf-8")
    ident = scratch / "pg_ident.conf"
    ident.write_text("", encoding="utf-8")
    config = scratch / "drill.conf"
    config.write_text(
        "\n".join(
            [
                f"data_directory = '{data}'",
                f"hba_file = '{hba}'",
                f"ident_file = '{ident}'",
                "listen_addresses = ''",
                f"unix_socket_directories = '{socket_dir}'",
                f"port = {SOCKET_PORT}",
                "archive_mode = off",
                "hot_standby = off",
                "max_connections = 20",
                "shared_preload_libraries = ''",
                "ssl = off",
                "logging_collector = off",
                "",
            ]
        ),
        encoding="utf-8",
    )
    return config


def _restored_url(source: URL, socket_dir: Path) -> URL:
    return source.set(host=None, port=None, password=None).update_query_dict(
        {"host": str(socket_dir), "port": str(SOCKET_PORT)}
    )


def _engine(url: URL | str, *, connect_args: dict[str, Any] | None = None) -> AsyncEngine:
    return create_async_engine(url, poolclass=NullPool, connect_args=connect_args or {})


async def _audit(engine: AsyncEngine, progress: Tracker) -> VerifyResult:
    async with AsyncSession(engine) as session:
        await session.connection(
            execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        )
        if progress.enabled:  # the bar's length: the head's seq, read in the same snapshot
            progress.update(total=(await export_checkpoint(session)).seq)
        return await verify_chain(session, on_progress=progress.completed)


async def _count(engine: AsyncEngine, table: Table) -> int | None:
    async with engine.connect() as conn:
        exists = await conn.scalar(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": table.name})
        if not exists:
            return None
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


async def _compare(source: AsyncEngine, restored: AsyncEngine, progress: Tracker) -> list[TableCount]:
    # Every table the schema defines (the model registry is what Alembic migrates).
    import cli.models  # noqa: F401  (fills Base.metadata)

    counts = []
    tables = sorted(Base.metadata.tables.values(), key=lambda t: t.name)
    progress.update(total=len(tables))
    for table in tables:
        counts.append(
            TableCount(
                table=table.name, restored=await _count(restored, table), source=await _count(source, table)
            )
        )
        progress.completed(len(counts))
    return counts


def run_drill(options: DrillOptions, *, progress: Tracker = QUIET) -> DrillReport:
    """The drill; ``progress`` is told each step as it begins (a terminal shows it, core/progress.py)."""
    began = time.monotonic()
    tool = options.pgbackrest
    user = tool.user
    progress.step(f"finding the newest backup of repository {options.repo}")
    backup = tool.latest(options.repo)
    report = DrillReport(backup=backup)
    scratch = Path(tempfile.mkdtemp(prefix="chuong-drill-", dir=options.scratch_parent))
    data, socket_dir = scratch / "data", scratch / "socket"
    pg_ctl = str(postgres_bindir(backup.pg_version, options.pg_bindir) / "pg_ctl")
    started = False
    try:
        for directory in (scratch, data, socket_dir):
            directory.mkdir(mode=0o700, exist_ok=True)
            user.own(directory)
        config = _drill_config(scratch, data, socket_dir)
        step = time.monotonic()
        progress.step(f"restoring backup {backup.label}")
        tool.restore(backup, into=data)
        report.seconds["restore"] = time.monotonic() - step

        step = time.monotonic()
        progress.step("replaying the archived WAL and starting the restored copy")
        # -w: pg_ctl returns once the server accepts connections, i.e. after the archive is replayed
        # and the copy promoted (hot_standby=off keeps it closed during recovery).
        user.run(
            [pg_ctl, "-D", str(data), "-l", str(scratch / "postgres.log"), "-w",
             "-t", str(options.start_timeout_seconds), "-o", f"-c config_file={config}", "start"],
            timeout=options.start_timeout_seconds + 30,
            what="starting the restored copy (see postgres.log with --keep)",
        )  # fmt: skip
        started = True
        asyncio.run(
            _check(
                report,
                source_url=options.source_url,
                restored_url=_restored_url(make_url(options.source_url), socket_dir),
                replay_began=step,
                replay_timeout=options.start_timeout_seconds,
                progress=progress,
            )
        )
    finally:
        if started:
            progress.step("stopping the restored copy")
            try:
                user.run([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], timeout=120, what="stopping")
            except BackupError:
                user.run([pg_ctl, "-D", str(data), "-m", "immediate", "stop"], timeout=60, what="stopping")
        if not options.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    report.seconds["total"] = time.monotonic() - began
    return report


async def _await_promotion(engine: AsyncEngine, *, deadline: float) -> None:
    """pg_ctl returns while the copy still replays WAL (it reports "standby" as ready when
    hot_standby is off); wait until it accepts connections and has left recovery."""
    while True:
        try:
            async with engine.connect() as conn:
                if not await conn.scalar(text("SELECT pg_is_in_recovery()")):
                    return
        except (OSError, DBAPIError):
            pass  # still starting up or replaying: not accepting connections yet
        if time.monotonic() > deadline:
            raise BackupError("the restored copy did not finish replaying the archive in time")
        await asyncio.sleep(0.2)


async def _check(
    report: DrillReport,
    *,
    source_url: str,
    restored_url: URL,
    replay_began: float,
    replay_timeout: float,
    progress: Tracker,
) -> None:
    # The live database over the service's TLS settings; the restored copy over its own socket.
    source = _engine(source_url, connect_args=postgres_tls_connect_args(get_settings()))
    restored = _engine(restored_url)
    try:
        await _await_promotion(restored, deadline=replay_began + replay_timeout)
        report.seconds["replay and start"] = time.monotonic() - replay_began
        step = time.monotonic()
        progress.step("verifying the audit chain on the restored copy")
        report.audit = await _audit(restored, progress)
        report.seconds["audit verification"] = time.monotonic() - step
        step = time.monotonic()
        progress.step("counting the rows of every table in the copy and the source")
        report.counts = await _compare(source, restored, progress)
        report.seconds["row counts"] = time.monotonic() - step
    finally:
        await source.dispose()
        await restored.dispose()
