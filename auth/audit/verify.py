"""Verifying the audit hash chain, and checkpoints that make tail truncation detectable (D-25).

The chain alone proves that no row was edited, removed from the middle or forged without the key,
but it cannot tell a chain whose newest rows were deleted from one that simply ended there. A
checkpoint (seq, head hash), exported regularly and kept outside the database (write-once
storage, a printed report), closes that gap: a later verification fails if the row at the
checkpoint's seq is missing or carries another hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth.audit.chain import chain_hash
from auth.audit.models import GENESIS_HASH, AuditLog
from core.clock import utcnow
from core.config import get_settings

CHECKPOINT_VERSION = 1
# Domain separation: a checkpoint MAC can never be mistaken for (or replayed as) a row hash.
_CHECKPOINT_MAC_CONTEXT = b"chuong-audit-checkpoint-v1\n"


class BreakReason(StrEnum):
    GENESIS = "genesis"  # the first row is not seq 1 or does not start from the genesis hash
    SEQ_GAP = "seq_gap"  # rows are missing: deleted from the middle of the chain
    PREV_HASH_MISMATCH = "prev_hash_mismatch"  # the link to the previous row was rewritten
    HASH_MISMATCH = "hash_mismatch"  # the row was edited, or forged without the key
    CHECKPOINT_MISSING = "checkpoint_missing"  # the tail up to the checkpoint was truncated
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"  # the chain was rewritten up to the checkpoint


REASON_TEXT = {
    BreakReason.GENESIS: "the chain does not start at seq 1 from the genesis hash",
    BreakReason.SEQ_GAP: "row missing: deleted from the chain",
    BreakReason.PREV_HASH_MISMATCH: "prev_hash does not match the previous row's hash",
    BreakReason.HASH_MISMATCH: "hash does not match the row's content: edited or forged",
    BreakReason.CHECKPOINT_MISSING: "row of the checkpoint is missing: the tail was truncated",
    BreakReason.CHECKPOINT_MISMATCH: "row differs from the checkpoint: the chain was rewritten",
}


class InvalidCheckpoint(ValueError):
    """The checkpoint document is malformed or its MAC does not match."""


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    exported_at: dt.datetime

    def _body(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "seq": self.seq,
            "hash": self.hash,
            "exported_at": self.exported_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        }

    def mac(self, *, key: bytes | None = None) -> str:
        body = json.dumps(self._body(), sort_keys=True, separators=(",", ":")).encode()
        return hmac.new(key or _key(), _CHECKPOINT_MAC_CONTEXT + body, hashlib.sha256).hexdigest()

    def to_json(self) -> str:
        return json.dumps({**self._body(), "mac": self.mac()}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        """Parse and authenticate a checkpoint; a document without a valid MAC is rejected, so a
        swapped checkpoint file cannot make a truncated chain look whole."""
        try:
            data = json.loads(text)
            if data["version"] != CHECKPOINT_VERSION:
                raise InvalidCheckpoint(f"unsupported checkpoint version {data['version']!r}")
            seq, head = data["seq"], data["hash"]
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or not isinstance(head, str):
                raise InvalidCheckpoint("checkpoint seq/hash have the wrong type")
            checkpoint = cls(seq=seq, hash=head, exported_at=dt.datetime.fromisoformat(data["exported_at"]))
            mac = data["mac"]
        except InvalidCheckpoint:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidCheckpoint(f"malformed checkpoint: {exc!r}") from exc
        if not isinstance(mac, str) or not hmac.compare_digest(mac, checkpoint.mac()):
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

    @property
    def message(self) -> str:
        if self.ok:
            head = f"head seq {self.head_seq}, hash {self.head_hash}"
            return f"audit chain intact: {self.rows_checked} rows, {head}"
        assert self.reason is not None
        why = REASON_TEXT[self.reason]
        return f"first broken sequence number: {self.first_broken_seq} ({self.reason}: {why})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows_checked": self.rows_checked,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "first_broken_seq": self.first_broken_seq,
            "reason": None if self.reason is None else self.reason.value,
            "checkpoint_seq": self.checkpoint_seq,
            "message": self.message,
        }


def _key() -> bytes:
    return get_settings().audit_hmac_key.get_secret_value().encode()


# Plain columns rather than ORM entities: entities would pile up in the session's identity map.
_COLUMNS = tuple(AuditLog.__table__.c)


async def verify_chain(
    session: AsyncSession,
    *,
    checkpoint: Checkpoint | None = None,
    batch: int = 5000,
    on_progress: Callable[[int], None] | None = None,
) -> VerifyResult:
    """Recompute the chain from genesis, ``batch`` rows at a time in seq order, and stop at the first
    break. Rows appended while this runs are checked too if the batch that reaches them sees them;
    use a REPEATABLE READ transaction for one consistent snapshot. ``on_progress`` is told the rows
    checked so far after each batch (a progress bar on a terminal, core/progress.py)."""
    key = _key()
    seq, head = 0, GENESIS_HASH
    checked = 0
    cp_seq = checkpoint.seq if checkpoint else None

    def broken(at: int, reason: BreakReason) -> VerifyResult:
        return VerifyResult(
            ok=False,
            rows_checked=checked,
            head_seq=seq,
            head_hash=head,
            first_broken_seq=at,
            reason=reason,
            checkpoint_seq=cp_seq,
        )

    while True:
        rows = (
            await session.execute(
                select(*_COLUMNS).where(AuditLog.seq > seq).order_by(AuditLog.seq).limit(batch)
            )
        ).all()
        for row in rows:
            data = cast("Mapping[str, Any]", row._mapping)
            expected = seq + 1
            if data["seq"] != expected:
                return broken(expected, BreakReason.GENESIS if seq == 0 else BreakReason.SEQ_GAP)
            if data["prev_hash"] != head:
                return broken(expected, BreakReason.GENESIS if seq == 0 else BreakReason.PREV_HASH_MISMATCH)
            # Recompute from the trusted previous hash, not from the row's own prev_hash column.
            if not hmac.compare_digest(chain_hash(head, data, key=key), data["hash"]):
                return broken(expected, BreakReason.HASH_MISMATCH)
            if checkpoint is not None and expected == checkpoint.seq and data["hash"] != checkpoint.hash:
                return broken(expected, BreakReason.CHECKPOINT_MISMATCH)
            seq, head = expected, data["hash"]
            checked += 1
        if on_progress is not None:
            on_progress(checked)
        if len(rows) < batch:
            break
    if checkpoint is not None:
        if seq < checkpoint.seq:
            # The chain ends before the checkpoint: the first missing row is the first break.
            return broken(seq + 1, BreakReason.CHECKPOINT_MISSING)
        if checkpoint.seq == 0 and checkpoint.hash != GENESIS_HASH:
            return broken(0, BreakReason.CHECKPOINT_MISMATCH)
    return VerifyResult(ok=True, rows_checked=checked, head_seq=seq, head_hash=head, checkpoint_seq=cp_seq)


async def export_checkpoint(session: AsyncSession) -> Checkpoint:
    """The current head as a checkpoint. It vouches only for what it names: verify the chain first
    (``checkpoint_of``) when the checkpoint is meant to certify the rows before it."""
    head = (
        await session.execute(select(AuditLog.seq, AuditLog.hash).order_by(AuditLog.seq.desc()).limit(1))
    ).first()
    seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
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
