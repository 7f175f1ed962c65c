"""Old months of the audit log are archived to signed, compressed files (D-25): `chuong audit
archive` writes a month's rows, reads the file back, and only then records it and drops the
partition; `chuong audit verify` on the live table starts from the archive's last hash; `chuong
audit verify --archive FILE` checks the file offline, and any tampering with it is named."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from auth.audit import archive as archive_module
from auth.audit.archive import ArchiveRefused, archive_partitions, verify_archive
from auth.audit.chain import keyring
from auth.audit.partitions import ensure_partitions
from auth.audit.verify import BreakReason, verify_chain
from core.clock import utcnow
from core.db import transaction
from tests.audit.helpers import months_ago, partition_name, set_clock, tamper, write_rows

ROOT = Path(__file__).resolve().parents[2]


async def chuong_audit(database_url: str, *args: str, owner_url: str | None = None) -> tuple[int, str]:
    env = {**os.environ, "CHUONG_DATABASE_URL": database_url}
    if owner_url:
        env["CHUONG_MIGRATION_DATABASE_URL"] = owner_url
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "auth.audit.cli",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


def owner_url_of(owner_engine: AsyncEngine) -> str:
    return owner_engine.url.render_as_string(hide_password=False)


async def write_months(counts: dict[int, int]) -> None:
    """``count`` rows in each month ``n`` months ago (0: now), oldest first."""
    async with transaction() as session:
        await ensure_partitions(session, now=utcnow(), since=months_ago(max(counts)).date())
    for n, count in sorted(counts.items(), reverse=True):
        set_clock(months_ago(n) if n else dt.datetime.now(dt.UTC))
        await write_rows(count)
    set_clock(dt.datetime.now(dt.UTC))


async def verify(**options: Any):
    async with transaction() as session:
        return await verify_chain(session, batch=3, **options)


async def archive(owner_engine: AsyncEngine, directory: Path, *, before_months_ago: int):
    return await archive_partitions(
        owner_engine,
        before=months_ago(before_months_ago).date(),
        output_dir=directory,
        now=utcnow(),
        keys=keyring(),
    )


async def partition_exists(owner_engine: AsyncEngine, name: str) -> bool:
    async with owner_engine.connect() as conn:
        return (await conn.execute(text("SELECT to_regclass(:name)"), {"name": name})).scalar() is not None


async def test_archive_a_month_then_verify_the_live_chain_and_the_file(database_url, owner_engine, tmp_path):
    await write_months({3: 4, 2: 3, 1: 2, 0: 1})  # seq 1-4, 5-7, 8-9, 10
    checkpoint = tmp_path / "checkpoint.json"
    assert (await chuong_audit(database_url, "checkpoint", "-o", str(checkpoint)))[0] == 0

    owner = owner_url_of(owner_engine)
    month = f"{months_ago(2):%Y-%m}"
    code, out = await chuong_audit(
        database_url, "archive", "--before", month, "-o", str(tmp_path), owner_url=owner
    )
    assert code == 0, out
    oldest = partition_name(months_ago(3))
    file = tmp_path / f"{oldest}.jsonl.gz"
    assert f"{oldest}: 4 rows archived to {file} and dropped" in out
    assert not await partition_exists(owner_engine, oldest)
    assert await partition_exists(owner_engine, partition_name(months_ago(2)))

    # The live chain (6 rows left) starts from the archive's last row; the old checkpoint still holds.
    code, out = await chuong_audit(database_url, "verify")
    assert code == 0 and "audit chain intact: 6 rows (continuing from the archives, seq 1-4)" in out, out
    code, out = await chuong_audit(database_url, "verify", "--checkpoint", str(checkpoint))
    assert code == 0, out
    code, out = await chuong_audit(database_url, "verify", "--archive", str(file))
    assert code == 0 and f"archive intact: {oldest}, 4 rows, seq 1-4" in out, out
    with gzip.open(file, "rt", encoding="utf-8") as lines:  # plain gzip JSON lines: zcat shows it
        assert [json.loads(line).get("seq") for line in lines] == [None, 1, 2, 3, 4]

    # The chain grows on; a second month is archived after the first.
    await write_rows(2)
    code, out = await chuong_audit(
        database_url, "archive", "--before", f"{months_ago(1):%Y-%m}", "-o", str(tmp_path), owner_url=owner
    )
    assert code == 0, out
    second = tmp_path / f"{partition_name(months_ago(2))}.jsonl.gz"
    code, out = await chuong_audit(database_url, "verify", "--archive", str(second), "--archive", str(file))
    assert code == 0 and "seq 5-7" in out, out
    result = await verify()
    assert result.ok and (result.archived_through_seq, result.rows_checked, result.head_seq) == (7, 5, 12)


def _lines(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as stream:
        return [json.loads(line) for line in stream]


def _rewrite(path: Path, lines: list[dict[str, Any]]) -> None:
    body = "".join(
        json.dumps(line, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n" for line in lines
    )
    path.write_bytes(gzip.compress(body.encode()))


def _edit_row(lines: list[dict[str, Any]]) -> None:
    lines[2]["details"] = {"x": 1}  # seq 2


def _remove_row(lines: list[dict[str, Any]]) -> None:
    del lines[3]  # seq 3


def _remove_last_row(lines: list[dict[str, Any]]) -> None:
    del lines[-1]


def _shorten_manifest(lines: list[dict[str, Any]]) -> None:
    # Hiding the removal of the last row by editing the manifest.
    del lines[-1]
    lines[0].update(rows=4, last_seq=4, last_hash=lines[-1]["hash"])


def _change_key_id_of_manifest(lines: list[dict[str, Any]]) -> None:
    lines[0]["key_id"] = "ghost"


def _move_row_in_time(lines: list[dict[str, Any]]) -> None:
    lines[1]["chained_at"] = "2001-01-01T00:00:00.000000+00:00"  # outside the row hash


def _swap_rows(lines: list[dict[str, Any]]) -> None:
    lines[1], lines[2] = lines[2], lines[1]


@pytest.mark.parametrize(
    ("tampering", "named"),
    [
        (_edit_row, "first broken sequence number: 2 (hash_mismatch"),
        (_remove_row, "first broken sequence number: 3 (seq_gap"),
        (_remove_last_row, "rows were removed"),
        (_shorten_manifest, "manifest's MAC does not match"),
        (_change_key_id_of_manifest, "audit key id 'ghost', which is not configured"),
        (_move_row_in_time, "differ from the manifest's SHA-256"),
        (_swap_rows, "first broken sequence number: 1 (archive_start"),
    ],
)
async def test_tampering_with_an_archive_is_named(
    database_url, owner_engine, tmp_path, tampering: Callable[[list[dict[str, Any]]], None], named: str
):
    await write_months({2: 5, 1: 1})
    [archived] = await archive(owner_engine, tmp_path, before_months_ago=1)
    assert archived.path is not None and archived.rows == 5
    lines = _lines(archived.path)
    _rewrite(archived.path, lines)
    assert verify_archive(archived.path, keys=keyring()) == archived.manifest  # rewritten as it was: intact
    tampering(lines)
    _rewrite(archived.path, lines)
    code, out = await chuong_audit(database_url, "verify", "--archive", str(archived.path))
    assert code == 1 and "archive broken" in out and named in out, out


async def test_a_damaged_file_or_the_wrong_keys_fail_verification(database_url, owner_engine, tmp_path):
    await write_months({2: 3, 1: 1})
    [archived] = await archive(owner_engine, tmp_path, before_months_ago=1)
    assert archived.path is not None
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"other": "a key that made nothing here"}))
    code, out = await chuong_audit(
        database_url, "verify", "--archive", str(archived.path), "--keys", str(keys)
    )
    assert code == 1 and "which is not configured" in out, out

    # On a machine with nothing but the file and the audit keys: no settings, no database.
    keys.write_text(json.dumps({"default": os.environ["CHUONG_AUDIT_HMAC_KEY"]}))
    offline = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "auth.audit.cli",
        "verify",
        "--archive",
        str(archived.path),
        "--keys",
        str(keys),
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out = (await offline.communicate())[0].decode()
    assert offline.returncode == 0 and "archive intact" in out, out

    data = bytearray(archived.path.read_bytes())
    data[-20] ^= 0xFF  # in the rows' compressed data (the last 8 bytes are its CRC and length)
    archived.path.write_bytes(bytes(data))
    code, out = await chuong_audit(database_url, "verify", "--archive", str(archived.path))
    assert code == 1 and "archive broken" in out, out


async def test_live_verification_names_a_forged_or_missing_archive_record(
    database_url, owner_engine, tmp_path
):
    await write_months({2: 3, 1: 2})
    await archive(owner_engine, tmp_path, before_months_ago=1)
    assert (await verify()).ok

    await tamper(owner_engine, "UPDATE audit_archives SET manifest = jsonb_set(manifest, '{rows}', '2')")
    result = await verify()
    assert (result.ok, result.first_broken_seq, result.reason) == (False, 1, BreakReason.ARCHIVE_RECORD)
    assert "MAC does not match" in result.message

    # Without its record, the live chain no longer reaches back to the genesis row.
    await tamper(owner_engine, "DELETE FROM audit_archives")
    result = await verify()
    assert (result.ok, result.first_broken_seq, result.reason) == (False, 1, BreakReason.GENESIS)


async def test_archiving_refuses_a_broken_chain_and_changes_nothing(database_url, owner_engine, tmp_path):
    await write_months({2: 4, 1: 1})
    await tamper(owner_engine, "UPDATE audit_log SET outcome = 'failure' WHERE seq = 2")
    with pytest.raises(ArchiveRefused, match=r"first broken sequence number: 2 \(hash_mismatch"):
        await archive(owner_engine, tmp_path, before_months_ago=1)
    assert await partition_exists(owner_engine, partition_name(months_ago(2)))
    assert list(tmp_path.iterdir()) == []
    async with owner_engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM audit_archives"))).scalar() == 0


async def test_archiving_needs_the_schema_owner(database_url, owner_engine, tmp_path):
    await write_months({2: 2, 1: 1})
    app_engine = create_async_engine(database_url)
    try:
        with pytest.raises(ArchiveRefused, match="schema owner"):
            await archive(app_engine, tmp_path, before_months_ago=1)
    finally:
        await app_engine.dispose()
    assert await partition_exists(owner_engine, partition_name(months_ago(2)))
    assert (await verify()).ok


async def test_the_current_month_is_never_archived_and_empty_months_are_dropped(
    database_url, owner_engine, tmp_path
):
    await write_months({1: 2, 0: 2})
    async with transaction() as session:
        await ensure_partitions(session, now=utcnow(), since=months_ago(3).date())  # empty months
    done = await archive(owner_engine, tmp_path, before_months_ago=-2)
    assert [(item.partition, item.rows, item.path is None) for item in done] == [
        (partition_name(months_ago(3)), 0, True),
        (partition_name(months_ago(2)), 0, True),
        (partition_name(months_ago(1)), 2, False),
    ]
    assert await partition_exists(owner_engine, partition_name(dt.datetime.now(dt.UTC)))
    result = await verify()
    assert result.ok and (result.archived_through_seq, result.rows_checked) == (2, 2)
    # Archived months are not created again.
    async with transaction() as session:
        assert await ensure_partitions(session, now=utcnow(), since=months_ago(3).date()) == []


async def test_a_file_left_by_an_interrupted_run_is_reused_never_overwritten(
    database_url, owner_engine, tmp_path, monkeypatch
):
    await write_months({2: 3, 1: 1})
    original = archive_module._detach_and_drop

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise ArchiveRefused("the machine stopped")

    monkeypatch.setattr(archive_module, "_detach_and_drop", crash)
    with pytest.raises(ArchiveRefused, match="stopped"):
        await archive(owner_engine, tmp_path, before_months_ago=1)
    file = tmp_path / f"{partition_name(months_ago(2))}.jsonl.gz"
    written = file.read_bytes()
    assert await partition_exists(owner_engine, partition_name(months_ago(2)))

    monkeypatch.setattr(archive_module, "_detach_and_drop", original)
    [done] = await archive(owner_engine, tmp_path, before_months_ago=1)
    assert done.path == file and file.read_bytes() == written
    assert (await verify()).ok

    # A different file in the way of the next month is refused, not replaced.
    (tmp_path / f"{partition_name(months_ago(1))}.jsonl.gz").write_bytes(written)
    with pytest.raises(ArchiveRefused, match="holds other rows"):
        await archive(owner_engine, tmp_path, before_months_ago=0)
