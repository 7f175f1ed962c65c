"""When the service's maintenance tasks last succeeded and last failed: the audit chain
verification (``chuong audit verify``), the pgBackRest backups of each repository (``chuong backup
record``) and the restore drills (``chuong backup drill``).

These run from cron on a host, outside the workers, so each records its own outcome here, one
row per task and repository; the periodic figures (notifications/figures.py) read the rows and
the API exports them as ``chuong_maintenance_last_{success,failure}_timestamp_seconds``, so an
alert fires when one failed or went stale (deploy/prometheus/alerts.yml). PostgreSQL rather than
Redis: a monthly drill's success must survive a Redis restart.

Recording never changes the outcome of the task: a task run against a read-only standby, or with
the database unreachable, still reports its own result and exit code; it only warns that the
outcome was not recorded.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import String, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.pool import NullPool

from core.clock import utcnow
from core.config import get_settings
from core.db import Base
from core.tls import postgres_tls_connect_args


class MaintenanceTask(StrEnum):
    AUDIT_VERIFY = "audit_verify"
    BACKUP = "backup"  # the newest complete backup of a repository (its stop time)
    RESTORE_DRILL = "restore_drill"


class MaintenanceRun(Base):
    __tablename__ = "maintenance_runs"

    task: Mapped[str] = mapped_column(String(32), primary_key=True)
    # The pgBackRest repository ("1", "2") for backups and drills; "" for the audit verification.
    repo: Mapped[str] = mapped_column(String(8), primary_key=True, default="")
    last_success_at: Mapped[dt.datetime | None]
    last_failure_at: Mapped[dt.datetime | None]


@dataclass(frozen=True)
class RunTimes:
    task: str
    repo: str
    last_success_at: dt.datetime | None
    last_failure_at: dt.datetime | None


async def record(
    session: AsyncSession, *, task: MaintenanceTask, ok: bool, repo: str = "", at: dt.datetime | None = None
) -> None:
    """Set the task's last success (or failure) to ``at`` (now); a later time never goes back."""
    when = at or utcnow()
    column = "last_success_at" if ok else "last_failure_at"
    statement = insert(MaintenanceRun).values(task=task.value, repo=repo, **{column: when})
    current = getattr(MaintenanceRun, column)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["task", "repo"],
            set_={column: statement.excluded[column]},
            where=(current.is_(None)) | (current < statement.excluded[column]),
        )
    )


async def all_runs(session: AsyncSession) -> list[RunTimes]:
    rows = (
        await session.execute(select(MaintenanceRun).order_by(MaintenanceRun.task, MaintenanceRun.repo))
    ).scalars()
    return [RunTimes(r.task, r.repo, r.last_success_at, r.last_failure_at) for r in rows]


async def _record_with_own_engine(
    *, task: MaintenanceTask, ok: bool, repo: str, at: dt.datetime | None, database_url: str
) -> None:
    engine = create_async_engine(
        database_url, poolclass=NullPool, connect_args=postgres_tls_connect_args(get_settings())
    )
    try:
        async with async_sessionmaker(engine)() as session, session.begin():
            await record(session, task=task, ok=ok, repo=repo, at=at)
    finally:
        await engine.dispose()


def record_outcome(
    task: MaintenanceTask,
    *,
    ok: bool,
    repo: str = "",
    at: dt.datetime | None = None,
    database_url: str | None = None,
) -> bool:
    """For the CLI commands: record in a transaction and an engine of its own (the command's
    engine may be gone, or point at a restored copy). Returns False, after a warning on stderr,
    when it could not be recorded."""
    url = database_url or get_settings().database_url
    try:
        asyncio.run(_record_with_own_engine(task=task, ok=ok, repo=repo, at=at, database_url=url))
    except Exception as exc:  # a read-only standby, the database down: the task's result stands
        print(
            f"warning: the outcome of {task.value} was not recorded: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return False
    return True
