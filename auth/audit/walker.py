"""Walking the hash chain row by row: the one check behind ``chuong audit verify`` on the live
table, the archiving of a partition, and ``chuong audit verify --archive`` on a file."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from auth.audit.chain import chain_hash
from auth.audit.models import GENESIS_HASH


class BreakReason(StrEnum):
    GENESIS = "genesis"  # the first row is not seq 1 or does not start from the genesis hash
    SEQ_GAP = "seq_gap"  # rows are missing: deleted from the middle of the chain
    SEQ_REPEATED = "seq_repeated"  # two rows with one seq: a forked chain
    PREV_HASH_MISMATCH = "prev_hash_mismatch"  # the link to the previous row was rewritten
    HASH_MISMATCH = "hash_mismatch"  # the row was edited, or forged without the key
    UNKNOWN_KEY = "unknown_key"  # the row names a key id that is not configured
    CHECKPOINT_MISSING = "checkpoint_missing"  # the tail up to the checkpoint was truncated
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"  # the chain was rewritten up to the checkpoint
    ARCHIVE_RECORD = "archive_record"  # a record of an archived partition is forged or out of line
    ARCHIVE_LINK = "archive_link"  # the first live row does not follow the last archived row
    ARCHIVE_START = "archive_start"  # an archive file's first row does not follow its manifest


REASON_TEXT = {
    BreakReason.GENESIS: "the chain does not start at seq 1 from the genesis hash",
    BreakReason.SEQ_GAP: "row missing: deleted from the chain",
    BreakReason.SEQ_REPEATED: "a second row with the same seq: the chain was forked",
    BreakReason.PREV_HASH_MISMATCH: "prev_hash does not match the previous row's hash",
    BreakReason.HASH_MISMATCH: "hash does not match the row's content: edited or forged",
    BreakReason.UNKNOWN_KEY: "the row names an audit key id that is not configured (CHUONG_AUDIT_HMAC_KEYS)",
    BreakReason.CHECKPOINT_MISSING: "row of the checkpoint is missing: the tail was truncated",
    BreakReason.CHECKPOINT_MISMATCH: "row differs from the checkpoint: the chain was rewritten",
    BreakReason.ARCHIVE_RECORD: "the record of an archived partition is altered, forged or out of line",
    BreakReason.ARCHIVE_LINK: "the first live row does not follow the last archived row",
    BreakReason.ARCHIVE_START: "the first row does not follow the start named by the archive's manifest",
}


@dataclass(frozen=True)
class Break:
    seq: int
    reason: BreakReason
    detail: str | None = None

    @property
    def message(self) -> str:
        why = REASON_TEXT[self.reason] + (f"; {self.detail}" if self.detail else "")
        return f"first broken sequence number: {self.seq} ({self.reason}: {why})"


@dataclass
class ChainWalker:
    """Checks rows handed to it in seq order, from a trusted start: the genesis, the last row of an
    archive (its signed manifest), or the row before an archive's first."""

    keys: Mapping[str, bytes]
    seq: int = 0
    head: str = GENESIS_HASH
    # What a break at the very first row means (it did not follow the trusted start).
    start_reason: BreakReason = BreakReason.GENESIS
    # A trusted (seq, hash) from a checkpoint: the row at that seq must carry that hash.
    checkpoint: tuple[int, str] | None = None
    checked: int = 0

    def check(self, row: Mapping[str, Any]) -> Break | None:
        """None if ``row`` continues the chain (it then becomes the head), else the break."""
        expected = self.seq + 1
        at_start = self.checked == 0
        if row["seq"] == self.seq and not at_start:
            return Break(self.seq, BreakReason.SEQ_REPEATED)
        if row["seq"] != expected:
            return Break(expected, self.start_reason if at_start else BreakReason.SEQ_GAP)
        if row["prev_hash"] != self.head:
            return Break(expected, self.start_reason if at_start else BreakReason.PREV_HASH_MISMATCH)
        key = self.keys.get(row["key_id"])
        if key is None:
            return Break(expected, BreakReason.UNKNOWN_KEY, detail=f"key id {row['key_id']!r}")
        # Recompute from the trusted previous hash, not from the row's own prev_hash column.
        if not hmac.compare_digest(chain_hash(self.head, row, key=key), row["hash"]):
            return Break(expected, BreakReason.HASH_MISMATCH)
        if (
            self.checkpoint is not None
            and self.checkpoint[0] == expected
            and self.checkpoint[1] != row["hash"]
        ):
            return Break(expected, BreakReason.CHECKPOINT_MISMATCH)
        self.seq, self.head = expected, row["hash"]
        self.checked += 1
        return None
