"""``chuong audit verify`` and ``chuong audit checkpoint``.

Both only read: they run in a read-only REPEATABLE READ transaction (one consistent snapshot of
the chain), so they also work on a standby or on a backup restored for a drill (D-42), and with
the application's role, which may SELECT the audit log.

Exit codes: 0 intact, 1 chain broken, 2 unusable checkpoint file.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

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
from core.db import dispose_engine, get_sessionmaker
from core.maintenance import MaintenanceTask, record_outcome

app = typer.Typer(help="Tamper-evident audit log (D-25).", no_args_is_help=True)

EXIT_BROKEN = 1
EXIT_BAD_CHECKPOINT = 2


async def _read_only(session: AsyncSession) -> None:
    await session.connection(
        execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    )


async def run_verify(*, checkpoint: Checkpoint | None, batch: int) -> VerifyResult:
    try:
        async with get_sessionmaker()() as session:
            await _read_only(session)
            return await verify_chain(session, checkpoint=checkpoint, batch=batch)
    finally:
        # A CLI process owns its engine: close the pool inside the loop that opened it.
        await dispose_engine()


async def run_checkpoint(*, verify_first: bool, batch: int) -> tuple[Checkpoint | None, VerifyResult | None]:
    try:
        async with get_sessionmaker()() as session:
            await _read_only(session)
            if not verify_first:
                return await export_checkpoint(session), None
            result = await verify_chain(session, batch=batch)
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
    batch: Annotated[int, typer.Option(min=1, max=100_000, help="Rows read per query.")] = 5000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Recompute the hash chain from the first row; name the first broken sequence number."""
    trusted: Checkpoint | None = None
    if checkpoint is not None:
        try:
            trusted = load_checkpoint(checkpoint)
        except (InvalidCheckpoint, OSError, UnicodeDecodeError) as exc:
            typer.echo(f"unusable checkpoint {checkpoint}: {exc}", err=True)
            raise typer.Exit(EXIT_BAD_CHECKPOINT) from exc
    result = asyncio.run(run_verify(checkpoint=trusted, batch=batch))
    record_outcome(MaintenanceTask.AUDIT_VERIFY, ok=result.ok)  # its own write (core/maintenance.py)
    typer.echo(json.dumps(result.as_dict(), indent=2) if as_json else result.message)
    if not result.ok:
        raise typer.Exit(EXIT_BROKEN)


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
    exported, result = asyncio.run(run_checkpoint(verify_first=not skip_verify, batch=batch))
    if exported is None:
        assert result is not None
        # Certifying a broken chain would launder the tampering into the next checkpoint.
        typer.echo(f"refusing to checkpoint: {result.message}", err=True)
        raise typer.Exit(EXIT_BROKEN)
    if output is not None:
        save_checkpoint(exported, output)
    typer.echo(exported.to_json(), nl=False)


if __name__ == "__main__":  # python -m auth.audit.cli (tests run it in a subprocess)
    app()
