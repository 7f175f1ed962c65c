"""Verifying the audit hash chain, and checkpoints that make tail truncation detectable (D-25).

The chain alone proves that no row was edited, removed from the middle or forged without the key,
but it cannot tell a chain whose newest rows were deleted from one that simply ended there. A
checkpoint (seq, head hash), exported regularly and kept outside the database (write-once
storage, a printed report), closes that gap: a later verification fails if the row at the
checkpoint's seq is missing or carries another hash.

Archived months (auth/audit/archive.py) have left the table: the live chain then starts from the
last archived row, as recorded with its signed manifest in ``audit_archives``, and those records
must reach back to the genesis row one after another.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Select, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from auth.audit.chain import keyring, signing_key
from auth.audit.manifest import ArchiveManifest, InvalidManifest
from auth.audit.models import GENESIS_HASH, AuditArchive, AuditLog
from auth.audit.walker import REASON_TEXT, Break, BreakReason, ChainWalker
from core.clock import utcnow
from core.config import AUDIT_DEFAULT_KID

__all__ = ["REASON_TEXT", "BreakReason", "Checkpoint", "InvalidCheckpoint", "VerifyResult", "verify_chain"]

# Version 1 had no key id: it was made with CHUONG_AUDIT_HMAC_KEY, the key "default".
CHECKPOINT_VERSION = 2
_CHECKPOINT_VERSIONS = (1, 2)
# Domain separation: a checkpoint MAC can never be mistaken for (or replayed as) a row hash.
_CHECKPOINT_MAC_CONTEXT = b"chuong-audit-checkpoint-v1\n"


class InvalidCheckpoint(ValueError):
    """The checkpoint document is malformed or its MAC does not match."""


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    exported_at: dt.datetime

    def _body(self, *, version: int, key_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "version": version,
            "seq": self.seq,
            "hash": self.hash,
            "exported_at": self.exported_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        }
        if version >= 2:  # the version that added key ids
            body["key_id"] = key_id
        return body

    def mac(self, *, key: bytes, key_id: str, version: int = CHECKPOINT_VERSION) -> str:
        body = json.dumps(self._body(version=version, key_id=key_id), sort_keys=True, separators=(",", ":"))
        return hmac.new(key, _CHECKPOINT_MAC_CONTEXT + body.encode(), hashlib.sha256).hexdigest()

    def to_json(self) -> str:
        """Signed with the active audit key, named by its id."""
        key_id, key = signing_key()
        body = self._body(version=CHECKPOINT_VERSION, key_id=key_id)
        return json.dumps({**body, "mac": self.mac(key=key, key_id=key_id)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        """Parse and authenticate a checkpoint; a document without a valid MAC is rejected, so a
        swapped checkpoint file cannot make a truncated chain look whole."""
        try:
            data = json.loads(text)
            version = data["version"]
            if version not in _CHECKPOINT_VERSIONS:
                raise InvalidCheckpoint(f"unsupported checkpoint version {version!r}")
            seq, head = data["seq"], data["hash"]
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or not isinstance(head, str):
                raise InvalidCheckpoint("checkpoint seq/hash have the wrong type")
            key_id = data["key_id"] if version >= 2 else AUDIT_DEFAULT_KID
            checkpoint = cls(seq=seq, hash=head, exported_at=dt.datetime.fromisoformat(data["exported_at"]))
            mac = data["mac"]
        except InvalidCheckpoint:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidCheckpoint(f"malformed checkpoint: {exc!r}") from exc
        key = keyring().get(key_id) if isinstance(key_id, str) else None
        if key is None:
            raise InvalidCheckpoint(
                f"checkpoint signed with audit key id {key_id!r}, which is not configured"
            )
        expected = checkpoint.mac(key=key, key_id=key_id, version=version)
        if not isinstance(mac, str) or not hmac.compare_digest(mac, expected):
            raise InvalidCheckpoint("checkpoint MAC does not match (altered, or made with another key)")
        return checkpoint


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows_checked: int
    # The last row that verified: (0, genesis) for an empty chain.
    head_seq: int
    head_hash: str
    first_broken_seq: int | None = None
    reason: BreakReason | None = None
    checkpoint_seq: int | None = None
    # The live chain continues from archived partitions up to this seq (0: it starts at genesis).
    archived_through_seq: int = 0
    detail: str | None = None

    @property
    def message(self) -> str:
        if self.ok:
            head = f"head seq {self.head_seq}, hash {self.head_hash}"
            archived = (
                f" (continuing from the archives, seq 1-{self.archived_through_seq})"
                if self.archived_through_seq
                else ""
            )
            return f"audit chain intact: {self.rows_checked} rows{archived}, {head}"
        assert self.reason is not None and self.first_broken_seq is not None
        return Break(self.first_broken_seq, self.reason, self.detail).message

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows_checked": self.rows_checked,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "first_broken_seq": self.first_broken_seq,
            "reason": None if self.reason is None else self.reason.value,
            "checkpoint_seq": self.checkpoint_seq,
            "archived_through_seq": self.archived_through_seq,
            "detail": self.detail,
            "message": self.message,
        }


# Plain columns rather than ORM entities: entities would pile up in the session's identity map.
_COLUMNS = tuple(AuditLog.__table__.c)


def rows_after(after: tuple[int, dt.datetime] | None, *, first_seq: int) -> Select[Any]:
    """Rows in chain order, by keyset on the whole primary key: every row is read once, a second
    row with the same seq too, wherever a page ends."""
    query = select(*_COLUMNS).order_by(AuditLog.seq, AuditLog.chained_at)
    if after is None:
        return query.where(AuditLog.seq >= first_seq)
    return query.where(tuple_(AuditLog.seq, AuditLog.chained_at) > tuple_(*after))


async def archived_start(session: AsyncSession, *, keys: Mapping[str, bytes]) -> tuple[int, str] | Break:
    """Where the live chain starts: (0, genesis), or the last row of the newest archived partition.
    The archive records must be authentic (their manifests' MACs) and reach back to the genesis
    one after another; otherwise the break names the first record that is not."""
    records: Sequence[AuditArchive] = (
        await session.scalars(select(AuditArchive).order_by(AuditArchive.first_seq))
    ).all()
    seq, head = 0, GENESIS_HASH
    for record in records:
        try:
            manifest = ArchiveManifest.from_signed(record.manifest, keys=keys)
        except InvalidManifest as exc:
            return Break(record.first_seq, BreakReason.ARCHIVE_RECORD, detail=str(exc))
        columns = (record.first_seq, record.last_seq, record.last_hash)
        if columns != (manifest.first_seq, manifest.last_seq, manifest.last_hash):
            return Break(
                record.first_seq, BreakReason.ARCHIVE_RECORD, detail="columns differ from the manifest"
            )
        if (manifest.first_seq, manifest.prev_hash) != (seq + 1, head):
            return Break(
                seq + 1, BreakReason.ARCHIVE_RECORD, detail=f"{manifest.partition} does not follow seq {seq}"
            )
        seq, head = manifest.last_seq, manifest.last_hash
    return seq, head


async def verify_chain(
    session: AsyncSession,
    *,
    checkpoint: Checkpoint | None = None,
    batch: int = 5000,
    on_progress: Callable[[int], None] | None = None,
) -> VerifyResult:
    """Recompute the chain from its start (genesis, or the last archived row), ``batch`` rows at a
    time in seq order, and stop at the first break. Rows appended while this runs are checked too
    if the batch that reaches them sees them; use a REPEATABLE READ transaction for one consistent
    snapshot. ``on_progress`` is told the rows checked so far after each batch (a progress bar on
    a terminal, core/progress.py)."""
    keys = keyring()
    cp_seq = checkpoint.seq if checkpoint else None
    start = await archived_start(session, keys=keys)
    if isinstance(start, Break):
        return VerifyResult(
            ok=False,
            rows_checked=0,
            head_seq=0,
            head_hash=GENESIS_HASH,
            first_broken_seq=start.seq,
            reason=start.reason,
            checkpoint_seq=cp_seq,
            detail=start.detail,
        )
    archived_seq, archived_hash = start
    walker = ChainWalker(
        keys=keys,
        seq=archived_seq,
        head=archived_hash,
        start_reason=BreakReason.ARCHIVE_LINK if archived_seq else BreakReason.GENESIS,
        checkpoint=(checkpoint.seq, checkpoint.hash) if checkpoint else None,
    )

    def result(found: Break | None = None) -> VerifyResult:
        return VerifyResult(
            ok=found is None,
            rows_checked=walker.checked,
            head_seq=walker.seq,
            head_hash=walker.head,
            first_broken_seq=found.seq if found else None,
            reason=found.reason if found else None,
            checkpoint_seq=cp_seq,
            archived_through_seq=archived_seq,
            detail=found.detail if found else None,
        )

    after: tuple[int, dt.datetime] | None = None
    while True:
        rows = (await session.execute(rows_after(after, first_seq=archived_seq + 1).limit(batch))).all()
        for row in rows:
            data = cast("Mapping[str, Any]", row._mapping)
            found = walker.check(data)
            if found is not None:
                return result(found)
            after = (data["seq"], data["chained_at"])
        if on_progress is not None:
            on_progress(walker.checked)
        if len(rows) < batch:
            break
    if checkpoint is not None:
        if walker.seq < checkpoint.seq:
            # The chain ends before the checkpoint: the first missing row is the first break.
            return result(Break(walker.seq + 1, BreakReason.CHECKPOINT_MISSING))
        if checkpoint.seq == 0 and checkpoint.hash != GENESIS_HASH:
            return result(Break(0, BreakReason.CHECKPOINT_MISMATCH))
        if checkpoint.seq == archived_seq and checkpoint.seq and checkpoint.hash != archived_hash:
            return result(Break(checkpoint.seq, BreakReason.CHECKPOINT_MISMATCH))
        # A checkpoint inside the archived stretch is checked against the archive files
        # (`chuong audit verify --archive`), which hold those rows.
    return result()


async def export_checkpoint(session: AsyncSession) -> Checkpoint:
    """The current head as a checkpoint. It vouches only for what it names: verify the chain first
    (``checkpoint_of``) when the checkpoint is meant to certify the rows before it."""
    head = (
        await session.execute(select(AuditLog.seq, AuditLog.hash).order_by(AuditLog.seq.desc()).limit(1))
    ).first()
    if head is not None:
        return Checkpoint(seq=head.seq, hash=head.hash, exported_at=utcnow())
    # Every row archived: the head is the last archived row.
    last = (
        await session.execute(
            select(AuditArchive.last_seq, AuditArchive.last_hash)
            .order_by(AuditArchive.last_seq.desc())
            .limit(1)
        )
    ).first()
    seq, head_hash = (last.last_seq, last.last_hash) if last else (0, GENESIS_HASH)
    return Checkpoint(seq=seq, hash=head_hash, exported_at=utcnow())


def checkpoint_of(result: VerifyResult) -> Checkpoint:
    """A checkpoint at the head that ``result`` verified."""
    if not result.ok:
        raise ValueError("refusing to checkpoint a broken chain")
    return Checkpoint(seq=result.head_seq, hash=result.head_hash, exported_at=utcnow())


def save_checkpoint(checkpoint: Checkpoint, path: Path) -> None:
    path.write_text(checkpoint.to_json(), encoding="utf-8")


def load_checkpoint(path: Path) -> Checkpoint:
    return Checkpoint.from_json(path.read_text(encoding="utf-8"))
