"""``chuong backup``: commands around pgBackRest (docs/backup.md).

Exit codes of ``drill``: 0 passed, 1 the restored audit chain is broken or a table is missing,
2 the drill could not run (no backup, restore or start failed: the message says which).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

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
        raise typer.Exit(EXIT_COULD_NOT_RUN) from exc
    typer.echo(json.dumps(report.as_dict(), indent=2) if as_json else "\n".join(report.lines()))
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)
