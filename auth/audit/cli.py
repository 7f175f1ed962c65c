"""``chuong audit verify``, ``checkpoint``, ``archive`` and ``partitions``.

``verify`` and ``checkpoint`` only read: they run in a read-only REPEATABLE READ transaction (one
consistent snapshot of the chain), so they also work on a standby or on a backup restored for a
drill (D-42), and with the application's role, which may SELECT the audit log. ``verify
--archive FILE`` needs no database at all: only the file and the audit keys.

``archive`` drops partitions, so it connects as the schema owner (CHUONG_MIGRATION_DATABASE_URL,
like ``chuong migrate``); ``partitions ensure`` works with the application's role too.

Exit codes: 0 intact, 1 chain broken (or an archive refused), 2 unusable checkpoint file.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from auth.audit.archive import ArchiveError, ArchiveRefused, archive_partitions, verify_archives
from auth.audit.chain import keyring
from auth.audit.partitions import (
    DEFAULT_PARTITION,
    MONTHS_AHEAD,
    ensure_partitions,
    list_partitions,
    parse_month,
)
from auth.audit.verify import (
    Checkpoint,
    InvalidCheckpoint,
    VerifyResult,
    checkpoint_of,
    export_checkpoint,
    load_checkpoint,
    save_checkpoint,
    verify_chain,
)
from core.clock import utcnow
from core.config import AUDIT_KID_PATTERN, get_settings
from core.db import dispose_engine, get_sessionmaker
from core.maintenance import MaintenanceTask, record_outcome
from core.progress import QUIET, Tracker, track
from core.tls import postgres_tls_connect_args

app = typer.Typer(help="Tamper-evident audit log (D-25).", no_args_is_help=True)
partitions_app = typer.Typer(help="The audit log's monthly partitions.", no_args_is_help=True)
app.add_typer(partitions_app, name="partitions")

EXIT_BROKEN = 1
EXIT_BAD_CHECKPOINT = 2


async def _read_only(session: AsyncSession) -> None:
    await session.connection(
        execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    )


async def _verify(
    session: AsyncSession, *, checkpoint: Checkpoint | None, batch: int, progress: Tracker
) -> VerifyResult:
    if progress.enabled:  # the bar's length: the head's seq, read in the same snapshot
        progress.update(total=(await export_checkpoint(session)).seq)
    return await verify_chain(session, checkpoint=checkpoint, batch=batch, on_progress=progress.completed)


async def run_verify(*, checkpoint: Checkpoint | None, batch: int, progress: Tracker = QUIET) -> VerifyResult:
    try:
        async with get_sessionmaker()() as session:
            await _read_only(session)
            return await _verify(session, checkpoint=checkpoint, batch=batch, progress=progress)
    finally:
        # A CLI process owns its engine: close the pool inside the loop that opened it.
        await dispose_engine()


async def run_checkpoint(
    *, verify_first: bool, batch: int, progress: Tracker = QUIET
) -> tuple[Checkpoint | None, VerifyResult | None]:
    try:
        async with get_sessionmaker()() as session:
            await _read_only(session)
            if not verify_first:
                return await export_checkpoint(session), None
            result = await _verify(session, checkpoint=None, batch=batch, progress=progress)
            return (checkpoint_of(result) if result.ok else None), result
    finally:
        await dispose_engine()


@app.command()
def verify(
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            exists=True,
            dir_okay=False,
            readable=True,
            help="A checkpoint from `chuong audit checkpoint`: also detects a truncated tail.",
        ),
    ] = None,
    archives: Annotated[
        list[Path] | None,
        typer.Option(
            "--archive",
            exists=True,
            dir_okay=False,
            readable=True,
            help="Check this archive file offline instead of the database (repeat for several).",
        ),
    ] = None,
    keys_file: Annotated[
        Path | None,
        typer.Option(
            "--keys",
            exists=True,
            dir_okay=False,
            readable=True,
            help='With --archive: the audit keys as JSON {"kid": "secret"} instead of the settings.',
        ),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, max=100_000, help="Rows read per query.")] = 5000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Recompute the hash chain from its start (genesis, or the last archived row) and name the
    first broken sequence number; or, with --archive, check archive files."""
    if archives:
        if checkpoint is not None:
            raise typer.BadParameter("--checkpoint applies to the database, not to --archive")
        _verify_archives(archives, keys_file=keys_file, as_json=as_json)
        return
    trusted: Checkpoint | None = None
    if checkpoint is not None:
        try:
            trusted = load_checkpoint(checkpoint)
        except (InvalidCheckpoint, OSError, UnicodeDecodeError) as exc:
            typer.echo(f"unusable checkpoint {checkpoint}: {exc}", err=True)
            raise typer.Exit(EXIT_BAD_CHECKPOINT) from exc
    with track("verifying the audit chain") as progress:
        result = asyncio.run(run_verify(checkpoint=trusted, batch=batch, progress=progress))
    record_outcome(MaintenanceTask.AUDIT_VERIFY, ok=result.ok)  # its own write (core/maintenance.py)
    typer.echo(json.dumps(result.as_dict(), indent=2) if as_json else result.message)
    if not result.ok:
        raise typer.Exit(EXIT_BROKEN)


def _keys_from(path: Path) -> dict[str, bytes]:
    try:
        listed = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"{path}: not a JSON file: {exc}") from exc
    if not isinstance(listed, dict) or not all(
        isinstance(kid, str) and AUDIT_KID_PATTERN.fullmatch(kid) and isinstance(secret, str)
        for kid, secret in listed.items()
    ):
        raise typer.BadParameter(f'{path}: expected a JSON object {{"kid": "secret", ...}}')
    return {kid: secret.encode() for kid, secret in listed.items()}


def _verify_archives(paths: list[Path], *, keys_file: Path | None, as_json: bool) -> None:
    try:
        keys = _keys_from(keys_file) if keys_file is not None else keyring()
    except ValidationError as exc:
        raise typer.BadParameter(
            f"no audit keys: give --keys KEYS.json, or the service's settings ({exc.error_count()} problems)",
            param_hint="--keys",
        ) from exc
    try:
        manifests = verify_archives(paths, keys=keys)
    except ArchiveError as exc:
        message = f"archive broken: {exc}"
        typer.echo(json.dumps({"ok": False, "message": message}, indent=2) if as_json else message)
        raise typer.Exit(EXIT_BROKEN) from exc
    lines = [
        f"archive intact: {m.partition}, {m.rows} rows, seq {m.first_seq}-{m.last_seq},"
        f" last hash {m.last_hash}"
        for m in manifests
    ]
    if as_json:
        documents = [
            {
                "partition": m.partition,
                "rows": m.rows,
                "first_seq": m.first_seq,
                "last_seq": m.last_seq,
                "last_hash": m.last_hash,
            }
            for m in manifests
        ]
        typer.echo(json.dumps({"ok": True, "archives": documents, "message": "; ".join(lines)}, indent=2))
    else:
        typer.echo("\n".join(lines))


@app.command()
def checkpoint(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", dir_okay=False, help="Write the checkpoint to this file as well."),
    ] = None,
    skip_verify: Annotated[
        bool, typer.Option("--skip-verify", help="Export the current head without verifying the chain first.")
    ] = False,
    batch: Annotated[int, typer.Option(min=1, max=100_000, help="Rows read per query.")] = 5000,
) -> None:
    """Print the head (seq, hash) as signed JSON, to keep outside the database.

    Store it on write-once media: a later `verify --checkpoint` then also detects rows deleted from
    the end of the chain.
    """
    with track("verifying the audit chain") as progress:
        exported, result = asyncio.run(
            run_checkpoint(verify_first=not skip_verify, batch=batch, progress=progress)
        )
    if exported is None:
        assert result is not None
        # Certifying a broken chain would launder the tampering into the next checkpoint.
        typer.echo(f"refusing to checkpoint: {result.message}", err=True)
        raise typer.Exit(EXIT_BROKEN)
    if output is not None:
        save_checkpoint(exported, output)
    typer.echo(exported.to_json(), nl=False)


async def run_archive(*, database_url: str, before: dt.date, output: Path) -> list[str]:
    # The owner's engine, unbounded (an archive reads a month whole), with the service's TLS.
    engine = create_async_engine(database_url, connect_args=postgres_tls_connect_args(get_settings()))
    try:
        done = await archive_partitions(
            engine, before=before, output_dir=output, now=utcnow(), keys=keyring()
        )
    finally:
        await engine.dispose()
    return [
        f"{item.partition}: {item.rows} rows archived to {item.path} and dropped"
        if item.path
        else f"{item.partition}: empty, dropped"
        for item in done
    ]


@app.command()
def archive(
    before: Annotated[str, typer.Option("--before", help="YYYY-MM: archive every month before this one.")],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", file_okay=False, help="Directory the archive files are written to."),
    ],
    database_url: Annotated[
        str | None,
        typer.Option(envvar="CHUONG_MIGRATION_DATABASE_URL", help="Owner connection (drops partitions)."),
    ] = None,
) -> None:
    """Archive old months: each to a signed, compressed file that is read back and verified before
    its partition is detached and dropped. Never the current month. Copy the files to the offline
    backups (D-42) and keep them for the 5 years of D-25."""
    try:
        month = parse_month(before)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--before") from exc
    url = database_url or get_settings().database_url
    try:
        lines = asyncio.run(run_archive(database_url=url, before=month, output=output))
    except ArchiveRefused as exc:
        typer.echo(f"refusing to archive: {exc}", err=True)
        raise typer.Exit(EXIT_BROKEN) from exc
    typer.echo("\n".join(lines) if lines else f"no partition ends before {before}")


async def run_ensure(*, months_ahead: int, since: dt.date | None) -> list[str]:
    try:
        async with get_sessionmaker()() as session, session.begin():
            return await ensure_partitions(session, now=utcnow(), months_ahead=months_ahead, since=since)
    finally:
        await dispose_engine()


@partitions_app.command("ensure")
def partitions_ensure(
    months_ahead: Annotated[int, typer.Option(min=1, max=24, help="Months after this one.")] = MONTHS_AHEAD,
    since: Annotated[
        str | None, typer.Option("--from", help="YYYY-MM: the first month (default: this one).")
    ] = None,
) -> None:
    """Create the partitions of the coming months (the worker does it daily) and move rows that
    waited in the default partition to theirs."""
    try:
        first = parse_month(since) if since else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--from") from exc
    created = asyncio.run(run_ensure(months_ahead=months_ahead, since=first))
    typer.echo("created: " + ", ".join(created) if created else "every partition exists already")


async def run_list() -> tuple[list[str], int]:
    try:
        async with get_sessionmaker()() as session:
            partitions = await list_partitions(session)
            counted = text(f"SELECT count(*) FROM {DEFAULT_PARTITION}")  # noqa: S608 (a constant)
            waiting = (await session.execute(counted)).scalar_one()
    finally:
        await dispose_engine()
    return [f"{p.name}  {p.start:%Y-%m-%d} .. {p.end:%Y-%m-%d} (UTC)" for p in partitions], waiting


@partitions_app.command("list")
def partitions_list() -> None:
    """The monthly partitions, oldest first, and the rows waiting in the default partition."""
    lines, waiting = asyncio.run(run_list())
    typer.echo(
        "\n".join([*lines, f"{DEFAULT_PARTITION}: {waiting} rows waiting for their month's partition"])
    )


if __name__ == "__main__":  # python -m auth.audit.cli (tests run it in a subprocess)
    app()
