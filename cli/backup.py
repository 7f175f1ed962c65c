"""``chuong backup``: commands around pgBackRest (docs/backup.md). Each drill and ``record`` writes
its outcome to the live database (core/maintenance.py) for the alerts on failed or stale backups.

Exit codes of ``drill``: 0 passed, 1 the restored audit chain is broken or a table is missing,
2 the drill could not run (no backup, restore or start failed: the message says which).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from core.maintenance import MaintenanceTask

app = typer.Typer(help="Backups (pgBackRest) and restore drills (D-42).", no_args_is_help=True)

EXIT_FAILED = 1
EXIT_COULD_NOT_RUN = 2


@app.command()
def drill(
    repo: Annotated[int, typer.Option(min=1, max=4, help="pgBackRest repository to restore from")] = 1,
    stanza: Annotated[str, typer.Option(envvar="CHUONG_BACKUP_STANZA", help="pgBackRest stanza")] = "chuong",
    pgbackrest_config: Annotated[
        Path | None,
        typer.Option(envvar="CHUONG_BACKUP_PGBACKREST_CONFIG", help="pgbackrest.conf (default: its own)"),
    ] = None,
    os_user: Annotated[
        str,
        typer.Option(envvar="CHUONG_BACKUP_OS_USER", help="Owner of the repositories"),
    ] = "postgres",
    scratch_dir: Annotated[
        Path | None,
        typer.Option(envvar="CHUONG_BACKUP_SCRATCH_DIR", help="Where to restore (room for the DB)"),
    ] = None,
    pg_bindir: Annotated[
        Path | None, typer.Option(envvar="CHUONG_BACKUP_PG_BINDIR", help="Directory of pg_ctl")
    ] = None,
    source_url: Annotated[
        str | None,
        typer.Option(envvar="CHUONG_DATABASE_URL", help="The live database to compare row counts with"),
    ] = None,
    keep: Annotated[bool, typer.Option(help="Leave the scratch directory (and postgres.log) behind")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Restore the newest backup of a repository into a scratch server, verify the audit chain
    there, compare row counts with the live database, remove the copy, and report the times."""
    from cli.backup_drill import DrillOptions, run_drill
    from cli.pgbackrest import BackupError, OsUser, PgBackRest
    from core.config import get_settings
    from core.progress import track

    options = DrillOptions(
        source_url=source_url or get_settings().database_url,
        pgbackrest=PgBackRest(stanza=stanza, user=OsUser(os_user), config=pgbackrest_config),
        repo=repo,
        scratch_parent=scratch_dir,
        pg_bindir=pg_bindir,
        keep=keep,
    )
    try:
        with track("restore drill") as progress:
            report = run_drill(options, progress=progress)
    except BackupError as exc:
        typer.echo(f"drill could not run: {exc}", err=True)
        _record(MaintenanceTask.RESTORE_DRILL, repo=repo, ok=False, database_url=options.source_url)
        raise typer.Exit(EXIT_COULD_NOT_RUN) from exc
    _record(MaintenanceTask.RESTORE_DRILL, repo=repo, ok=report.ok, database_url=options.source_url)
    typer.echo(json.dumps(report.as_dict(), indent=2) if as_json else "\n".join(report.lines()))
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def record(
    repos: Annotated[
        list[int], typer.Option("--repo", min=1, max=4, help="pgBackRest repository (repeatable)")
    ],
    stanza: Annotated[str, typer.Option(envvar="CHUONG_BACKUP_STANZA", help="pgBackRest stanza")] = "chuong",
    pgbackrest_config: Annotated[
        Path | None,
        typer.Option(envvar="CHUONG_BACKUP_PGBACKREST_CONFIG", help="pgbackrest.conf (default: its own)"),
    ] = None,
    os_user: Annotated[
        str, typer.Option(envvar="CHUONG_BACKUP_OS_USER", help="Owner of the repositories")
    ] = "postgres",
) -> None:
    """Record when the newest complete backup of each repository ended, as pgBackRest's catalogue
    says, for the alert on stale backups (docs/backup.md). Run it after each backup (cron)."""
    from cli.pgbackrest import BackupError, OsUser, PgBackRest

    tool = PgBackRest(stanza=stanza, user=OsUser(os_user), config=pgbackrest_config)
    failed = False
    for repo in repos:
        try:
            newest = tool.latest(repo)
        except BackupError as exc:
            typer.echo(f"repository {repo}: {exc}", err=True)
            failed = True
            continue
        ended = dt.datetime.fromtimestamp(newest.stopped_at, tz=dt.UTC)
        if not _record(MaintenanceTask.BACKUP, repo=repo, ok=True, at=ended):
            failed = True
            continue
        typer.echo(
            f"repository {repo}: backup {newest.label} ({newest.kind}) ended {ended:%Y-%m-%d %H:%M:%S} UTC"
        )
    if failed:
        raise typer.Exit(EXIT_COULD_NOT_RUN)


def _record(
    task: MaintenanceTask,
    *,
    repo: int,
    ok: bool,
    at: dt.datetime | None = None,
    database_url: str | None = None,
) -> bool:
    from core.maintenance import record_outcome

    return record_outcome(task, ok=ok, repo=str(repo), at=at, database_url=database_url)
