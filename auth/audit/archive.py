"""Archiving old months of the audit log to signed, compressed files, and checking them offline.

An archive file (``audit_log_pYYYY_MM.jsonl.gz``) is gzip: its first line is the partition's signed
manifest (auth/audit/manifest.py), every further line one row with all its columns, in seq order
(``zcat`` shows it; it is written as two gzip members, the manifest's and the rows'). Checking a
file needs only the file and the audit keys: the manifest's MAC, every row's hash recomputed along
the chain from the manifest's start, the last row against the manifest's, and the SHA-256 of the
row lines (which also covers ``key_id`` and ``chained_at``, outside the row hashes).

Archiving a month (``chuong audit archive``, as the schema owner): the rows are read and checked
along the chain from where the live chain starts, written to the file, the file is read back and
checked as above, and only then, in one transaction, the manifest is recorded in
``audit_archives`` (where ``chuong audit verify`` on the live table will start from) and the
partition is detached and dropped. Anything unexpected stops it before the database is changed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import hashlib
import itertools
import json
import os
import shutil
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from auth.audit.chain import jsonable
from auth.audit.manifest import ArchiveManifest, InvalidManifest
from auth.audit.models import GENESIS_HASH, AuditArchive, AuditLog
from auth.audit.partitions import Partition, ensure_partitions, list_partitions, month_of
from auth.audit.verify import archived_start, rows_after
from auth.audit.walker import Break, BreakReason, ChainWalker

ARCHIVE_SUFFIX = ".jsonl.gz"
# Every column, in the table's order: what a row line holds.
ARCHIVED_FIELDS = tuple(column.name for column in AuditLog.__table__.c)


class ArchiveError(Exception):
    """The archive file is unreadable, altered, or does not match its manifest."""


class ArchiveRefused(Exception):
    """Archiving stopped before the database was changed."""


def row_line(row: Mapping[str, Any]) -> bytes:
    body = {name: jsonable(row[name]) for name in ARCHIVED_FIELDS}
    return (json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def _row_of(line: bytes, number: int) -> Mapping[str, Any]:
    try:
        row = json.loads(line)
    except ValueError as exc:
        raise ArchiveError(f"line {number} is not a JSON row: {exc}") from exc
    if not isinstance(row, dict) or not set(ARCHIVED_FIELDS) <= row.keys():
        raise ArchiveError(f"line {number} is not an audit row (fields missing)")
    return cast("Mapping[str, Any]", row)


def verify_archive(path: Path, *, keys: Mapping[str, bytes]) -> ArchiveManifest:
    """Check an archive file offline; its manifest if every check passes, else ``ArchiveError``
    naming the first problem."""
    try:
        with gzip.open(path, "rb") as stream:
            try:
                document = json.loads(stream.readline())
            except ValueError as exc:
                raise ArchiveError("the first line is not a manifest") from exc
            try:
                manifest = ArchiveManifest.from_signed(document, keys=keys)
            except InvalidManifest as exc:
                raise ArchiveError(f"manifest: {exc}") from exc
            walker = ChainWalker(
                keys=keys,
                seq=manifest.first_seq - 1,
                head=manifest.prev_hash,
                start_reason=BreakReason.ARCHIVE_START,
            )
            digest = hashlib.sha256()
            for number, line in enumerate(stream, start=2):
                digest.update(line)
                found = walker.check(_row_of(line, number))
                if found is not None:
                    raise ArchiveError(found.message)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise ArchiveError(f"unreadable archive: {exc}") from exc
    if walker.checked != manifest.rows or walker.seq != manifest.last_seq:
        raise ArchiveError(
            f"the rows end at seq {walker.seq}, the manifest names seq"
            f" {manifest.first_seq}-{manifest.last_seq}: rows were removed"
        )
    if walker.head != manifest.last_hash:
        raise ArchiveError(f"the last row (seq {walker.seq}) is not the one the manifest names")
    if digest.hexdigest() != manifest.rows_sha256:
        raise ArchiveError(
            "the row lines differ from the manifest's SHA-256 (key_id or chained_at changed, or lines"
            " reformatted)"
        )
    return manifest


def verify_archives(paths: Iterable[Path], *, keys: Mapping[str, bytes]) -> list[ArchiveManifest]:
    """Check several files, and that they follow one another (in seq order) without a gap."""
    manifests: list[ArchiveManifest] = []
    for path in paths:
        try:
            manifests.append(verify_archive(path, keys=keys))
        except ArchiveError as exc:
            raise ArchiveError(f"{path}: {exc}") from exc
    manifests.sort(key=lambda manifest: manifest.first_seq)
    for before, after in itertools.pairwise(manifests):
        if (after.first_seq, after.prev_hash) != (before.last_seq + 1, before.last_hash):
            raise ArchiveError(
                f"{after.partition} does not follow {before.partition} (seq {before.last_seq})"
            )
    if manifests and manifests[0].first_seq == 1 and manifests[0].prev_hash != GENESIS_HASH:
        raise ArchiveError(f"{manifests[0].partition} starts at seq 1 but not from the genesis hash")
    return manifests


# --- archiving ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchivedPartition:
    partition: str
    rows: int
    # None: the partition was empty and was dropped without a file.
    path: Path | None = None
    manifest: ArchiveManifest | None = None


def _same_stretch(a: ArchiveManifest, b: ArchiveManifest) -> bool:
    return replace(a, created_at=b.created_at) == b


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be opened
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


async def _export_rows(
    session: AsyncSession, *, partition: Partition, walker: ChainWalker, rows_path: Path, batch: int
) -> str:
    """Write the partition's rows, checked along the chain, to ``rows_path`` (gzip); the SHA-256
    of the lines written."""
    digest = hashlib.sha256()
    after: tuple[int, dt.datetime] | None = None
    in_month = (AuditLog.chained_at >= partition.start, AuditLog.chained_at < partition.end)
    with gzip.open(rows_path, "wb") as out:
        while True:
            query = rows_after(after, first_seq=walker.seq + 1).where(*in_month).limit(batch)
            rows = (await session.execute(query)).all()
            for row in rows:
                data = cast("Mapping[str, Any]", row._mapping)
                found = walker.check(data)
                if found is not None:
                    raise ArchiveRefused(f"{partition.name}: {found.message}; nothing was archived")
                line = row_line(data)
                digest.update(line)
                out.write(line)
                after = (data["seq"], data["chained_at"])
            if len(rows) < batch:
                return digest.hexdigest()


def _write_archive(*, path: Path, manifest_document: Mapping[str, Any], rows_path: Path) -> None:
    """The manifest's gzip member, then the rows' (already compressed), atomically at ``path``."""
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("wb") as out:
        out.write(gzip.compress(json.dumps(manifest_document, sort_keys=True).encode() + b"\n"))
        with rows_path.open("rb") as rows:
            shutil.copyfileobj(rows, out)
        out.flush()
        os.fsync(out.fileno())
    partial.rename(path)
    _fsync_directory(path.parent)


def _signed_document(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rb") as stream:
        document: dict[str, Any] = json.loads(stream.readline())
    return document


async def _archive_one(
    sessions: async_sessionmaker[AsyncSession],
    *,
    partition: Partition,
    output_dir: Path,
    keys: Mapping[str, bytes],
    now: dt.datetime,
    batch: int,
) -> ArchivedPartition:
    rows_path = output_dir / f".{partition.name}.rows.partial"
    path = output_dir / f"{partition.name}{ARCHIVE_SUFFIX}"
    try:
        async with sessions() as session:
            # One snapshot for the records and the rows (nothing writes into a past month).
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            start = await archived_start(session, keys=keys)
            if isinstance(start, Break):
                raise ArchiveRefused(f"the records of earlier archives are not intact: {start.message}")
            walker = ChainWalker(
                keys=keys, seq=start[0], head=start[1], start_reason=BreakReason.ARCHIVE_LINK
            )
            digest = await _export_rows(
                session, partition=partition, walker=walker, rows_path=rows_path, batch=batch
            )
            # The month must be the oldest stretch of the live chain: no row up to its last seq
            # may remain in a later partition once it is dropped.
            later = await session.scalar(
                select(func.count()).where(AuditLog.seq <= walker.seq, AuditLog.chained_at >= partition.end)
            )
            if later:
                raise ArchiveRefused(
                    f"{partition.name}: {later} rows up to seq {walker.seq} are stored in later months"
                )
        if walker.checked == 0:
            await _detach_and_drop(sessions, partition=partition, record=None, rows=0, last_seq=None)
            return ArchivedPartition(partition=partition.name, rows=0)
        manifest = ArchiveManifest(
            partition=partition.name,
            period_start=partition.start,
            period_end=partition.end,
            first_seq=start[0] + 1,
            last_seq=walker.seq,
            prev_hash=start[1],
            last_hash=walker.head,
            rows=walker.checked,
            rows_sha256=digest,
            created_at=now,
        )
        if path.exists():
            # A run that wrote the file and stopped before the database: reuse it if it holds
            # exactly these rows, never overwrite it.
            try:
                existing = verify_archive(path, keys=keys)
            except ArchiveError as exc:
                raise ArchiveRefused(f"{path} exists and is not a valid archive: {exc}") from exc
            if not _same_stretch(existing, manifest):
                raise ArchiveRefused(f"{path} exists and holds other rows; move it away first")
            document = _signed_document(path)
        else:
            document = manifest.signed()
            _write_archive(path=path, manifest_document=document, rows_path=rows_path)
        # Read back what was written: the database keeps the rows until the file checks out.
        try:
            written = verify_archive(path, keys=keys)
        except ArchiveError as exc:
            raise ArchiveRefused(f"{path} did not verify after writing: {exc}") from exc
        if not _same_stretch(written, manifest):
            raise ArchiveRefused(f"{path} does not hold the rows that were read")
        record = AuditArchive(
            first_seq=written.first_seq,
            last_seq=written.last_seq,
            last_hash=written.last_hash,
            period_end=written.period_end,
            manifest=document,
            archived_at=now,
        )
        await _detach_and_drop(
            sessions, partition=partition, record=record, rows=written.rows, last_seq=written.last_seq
        )
        return ArchivedPartition(partition=partition.name, rows=written.rows, path=path, manifest=written)
    finally:
        rows_path.unlink(missing_ok=True)


async def _detach_and_drop(
    sessions: async_sessionmaker[AsyncSession],
    *,
    partition: Partition,
    record: AuditArchive | None,
    rows: int,
    last_seq: int | None,
) -> None:
    """Record the archive and drop the partition, in one transaction; the partition must still hold
    exactly the archived rows. Its name comes from ``list_partitions`` (audit_log_pYYYY_MM)."""
    try:
        await _record_and_drop(sessions, partition=partition, record=record, rows=rows, last_seq=last_seq)
    except DBAPIError as exc:
        raise ArchiveRefused(
            f"the database refused to record the archive or drop {partition.name} ({exc.orig}); archiving"
            " connects as the schema owner (CHUONG_MIGRATION_DATABASE_URL). Nothing was dropped."
        ) from exc


async def _record_and_drop(
    sessions: async_sessionmaker[AsyncSession],
    *,
    partition: Partition,
    record: AuditArchive | None,
    rows: int,
    last_seq: int | None,
) -> None:
    async with sessions() as session, session.begin():
        if record is not None:
            session.add(record)
            await session.flush()
        await session.execute(text(f'ALTER TABLE audit_log DETACH PARTITION "{partition.name}"'))
        counted = text(f'SELECT count(*), max(seq) FROM "{partition.name}"')  # noqa: S608 (a partition's name)
        count, top = (await session.execute(counted)).one()
        if (count, top) != (rows, last_seq):
            raise ArchiveRefused(
                f"{partition.name} changed while it was archived ({count} rows); nothing dropped"
            )
        await session.execute(text(f'DROP TABLE "{partition.name}"'))


async def archive_partitions(
    engine: AsyncEngine,
    *,
    before: dt.date,
    output_dir: Path,
    now: dt.datetime,
    keys: Mapping[str, bytes],
    batch: int = 5000,
) -> Sequence[ArchivedPartition]:
    """Archive every monthly partition that ends on or before the month ``before`` (and before the
    current month), oldest first. ``engine`` connects as the schema owner: the application's role
    can neither detach nor drop a partition."""
    cutoff = min(month_of(before), month_of(now))
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as session, session.begin():
        # Rows that waited in the default partition go to their months first.
        await ensure_partitions(session, now=now)
    async with sessions() as session:
        due = [
            p
            for p in await list_partitions(session)
            if p.end <= dt.datetime(cutoff.year, cutoff.month, 1, tzinfo=dt.UTC)
        ]
    output_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before any row is read)
    done = []
    for partition in due:
        done.append(
            await _archive_one(
                sessions, partition=partition, output_dir=output_dir, keys=keys, now=now, batch=batch
            )
        )
    return done
