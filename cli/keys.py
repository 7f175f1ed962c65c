"""``chuong keys``: rotating the field-encryption and JWT keys without downtime (docs/security.md
"TLS and key rotation").

* ``new-field-key`` / ``new-jwt-key`` print a fresh key (stdout) and the steps (stderr).
* ``rotate-fields`` re-encrypts every encrypted column under the first key of
  CHUONG_FIELD_ENCRYPTION_KEYS (core/field_rotation.py), then checks that nothing is left under
  another key: only then may the old key be removed. ``--check`` only counts. Audited as a system
  action (started, finished with the counts).

JWT keys need no data pass: access tokens live ``access_token_ttl_seconds``, so an old key is
dropped once that long has passed since the switch.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Annotated

import typer

from auth import audit
from core.db import Base, dispose_engine, transaction
from core.field_rotation import DEFAULT_BATCH_SIZE, ColumnTally, encrypted_columns, rotate_column
from core.progress import QUIET, Tracker, track

app = typer.Typer(no_args_is_help=True, help="Rotate the field-encryption and JWT keys")
BatchSize = Annotated[int, typer.Option(min=1, max=10_000, help="Rows per transaction")]
ROW = "  {:<32} {:>9} {:>9} {:>9} {:>9} {:>10}"


@app.command("new-field-key")
def new_field_key() -> None:
    """Print a new Fernet key to put FIRST in CHUONG_FIELD_ENCRYPTION_KEYS."""
    from cryptography.fernet import Fernet

    typer.echo(Fernet.generate_key().decode())
    typer.echo(
        "next: CHUONG_FIELD_ENCRYPTION_KEYS=<this key>,<the current keys>; restart every API and worker "
        "process; run `chuong keys rotate-fields`; then remove the old keys and restart again",
        err=True,
    )


@app.command("new-jwt-key")
def new_jwt_key() -> None:
    """Print a new JWT signing key as a JSON member ("kid": "secret") for CHUONG_JWT_KEYS."""
    kid = "k" + secrets.token_hex(4)
    typer.echo(json.dumps({kid: secrets.token_urlsafe(48)}))
    typer.echo(
        f"next: add it to CHUONG_JWT_KEYS and restart every API process; then set "
        f"CHUONG_JWT_ACTIVE_KID={kid} and restart them again; after CHUONG_ACCESS_TOKEN_TTL_SECONDS "
        "remove the old key",
        err=True,
    )


@app.command("rotate-fields")
def rotate_fields(
    batch_size: BatchSize = DEFAULT_BATCH_SIZE,
    check: Annotated[bool, typer.Option("--check", help="Only count values not under the first key")] = False,
) -> None:
    """Re-encrypt every encrypted field under the first key of CHUONG_FIELD_ENCRYPTION_KEYS.
    Safe while the service runs, safe to stop and run again. Exits 1 while any value is still
    under another key (or under none)."""
    with track("re-encrypting the encrypted fields") as progress:
        passes = asyncio.run(_run(batch_size=batch_size, check=check, tracker=progress))
    for title, tallies in passes:
        _print_tallies(title, tallies)
    final = passes[-1][1]
    left = sum(t.old_key for t in final)
    unreadable = sum(t.unreadable for t in final)
    if unreadable:
        typer.echo(
            f"{unreadable} value(s) open with none of the listed keys: a key was removed too early; "
            "put it back (from the key backup) and run again",
            err=True,
        )
    if left:
        typer.echo(
            f"{left} value(s) still under an older key: run `chuong keys rotate-fields` (again, once "
            "every process has the new key first); keep the old keys until this reports none",
            err=True,
        )
    if left or unreadable:
        raise typer.Exit(1)
    typer.echo("every encrypted value is under the first key: the other keys may be removed")


async def _run(
    *, batch_size: int, check: bool, tracker: Tracker = QUIET
) -> list[tuple[str, list[ColumnTally]]]:
    import cli.models  # noqa: F401  (registers every table, and so every encrypted column)

    columns = encrypted_columns(Base.metadata)
    names = [column.name for column in columns]
    try:
        if check:
            return [("check", [await rotate_column(c, write=False, batch_size=batch_size) for c in columns])]
        await _audit("keys.field_rotation_started", {"columns": names})
        current: list[str] = []

        def progress(column: str, examined: int) -> None:
            if current != [column]:  # one spinner line per column, counting its values
                current[:] = [column]
                tracker.step(f"re-encrypting {column}")
            tracker.update(completed=examined)

        rotated = [
            await rotate_column(c, write=True, batch_size=batch_size, progress=progress) for c in columns
        ]
        checked = [await rotate_column(c, write=False, batch_size=batch_size) for c in columns]
        await _audit(
            "keys.field_rotation_finished",
            {
                "rotated": [t.as_dict() for t in rotated],
                "left_under_old_keys": sum(t.old_key for t in checked),
                "unreadable": sum(t.unreadable for t in checked),
            },
        )
        return [("re-encryption", rotated), ("check", checked)]
    finally:
        await dispose_engine()


async def _audit(action: str, details: dict[str, object]) -> None:
    async with transaction() as session:
        audit.record(session, action=action, actor_kind="system", details=details)


def _print_tallies(title: str, tallies: list[ColumnTally]) -> None:
    typer.echo(f"{title}:")
    typer.echo(ROW.format("column", "values", "current", "old key", "rewritten", "unreadable"))
    for t in tallies:
        typer.echo(ROW.format(t.column, t.examined, t.current, t.old_key, t.rewritten, t.unreadable))
