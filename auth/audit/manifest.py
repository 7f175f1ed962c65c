"""The signed manifest of an archived partition: the first line of the archive file, and a row of
``audit_archives`` in the live database (the point the live chain's verification starts from).

It names the stretch of the chain the file holds (first and last seq, the hash before the first row
and the last row's hash), the number of rows and the SHA-256 of their lines, and carries an
HMAC-SHA256 under an audit key, named by its id. HMAC rather than a public-key signature: checking
the rows themselves needs the audit keys anyway (each row's hash is an HMAC), so a public key would
let nobody check more than the keys already allow, and one kind of key is one less to guard.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from auth.audit.chain import signing_key

ARCHIVE_FORMAT = "chuong-audit-archive"
ARCHIVE_VERSION = 1
# Domain separation: a manifest MAC can never be replayed as a row hash or a checkpoint MAC.
_MAC_CONTEXT = b"chuong-audit-archive-v1\n"
_HASH_LENGTH = 64


class InvalidManifest(ValueError):
    """The manifest is malformed, made with a key that is not configured, or its MAC does not match."""


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _mac(key: bytes, body: Mapping[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hmac.new(key, _MAC_CONTEXT + canonical, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ArchiveManifest:
    partition: str
    period_start: dt.datetime
    period_end: dt.datetime
    first_seq: int
    last_seq: int
    # The hash the first row chains from (the genesis hash, or the previous archive's last hash).
    prev_hash: str
    last_hash: str
    rows: int
    # SHA-256 of the row lines exactly as stored (UTF-8, each ending in "\n"), uncompressed.
    rows_sha256: str
    created_at: dt.datetime

    def _body(self, key_id: str) -> dict[str, Any]:
        return {
            "format": ARCHIVE_FORMAT,
            "version": ARCHIVE_VERSION,
            "partition": self.partition,
            "period_start": _iso(self.period_start),
            "period_end": _iso(self.period_end),
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "prev_hash": self.prev_hash,
            "last_hash": self.last_hash,
            "rows": self.rows,
            "rows_sha256": self.rows_sha256,
            "created_at": _iso(self.created_at),
            "key_id": key_id,
        }

    def signed(self) -> dict[str, Any]:
        """The manifest as a JSON document, with its MAC under the active audit key."""
        key_id, key = signing_key()
        body = self._body(key_id)
        return {**body, "mac": _mac(key, body)}

    @classmethod
    def from_signed(cls, document: object, *, keys: Mapping[str, bytes]) -> ArchiveManifest:
        """Parse and authenticate a manifest; anything altered is refused."""
        if not isinstance(document, Mapping):
            raise InvalidManifest("the manifest is not a JSON object")
        try:
            if document["format"] != ARCHIVE_FORMAT or document["version"] != ARCHIVE_VERSION:
                raise InvalidManifest(
                    f"not a {ARCHIVE_FORMAT} version {ARCHIVE_VERSION} manifest: "
                    f"{document['format']!r} version {document['version']!r}"
                )
            counts = [document[name] for name in ("first_seq", "last_seq", "rows")]
            hashes = [document[name] for name in ("prev_hash", "last_hash", "rows_sha256")]
            texts = [document[name] for name in ("partition", "key_id", "mac")]
            if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
                raise InvalidManifest("first_seq, last_seq and rows must be whole numbers")
            if not all(isinstance(h, str) and len(h) == _HASH_LENGTH for h in hashes):
                raise InvalidManifest("prev_hash, last_hash and rows_sha256 must be 64 hex digits")
            if not all(isinstance(t, str) for t in texts):
                raise InvalidManifest("partition, key_id and mac must be strings")
            manifest = cls(
                partition=document["partition"],
                period_start=dt.datetime.fromisoformat(document["period_start"]),
                period_end=dt.datetime.fromisoformat(document["period_end"]),
                first_seq=document["first_seq"],
                last_seq=document["last_seq"],
                prev_hash=document["prev_hash"],
                last_hash=document["last_hash"],
                rows=document["rows"],
                rows_sha256=document["rows_sha256"],
                created_at=dt.datetime.fromisoformat(document["created_at"]),
            )
            key_id, mac = document["key_id"], document["mac"]
        except InvalidManifest:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidManifest(f"malformed manifest: {exc!r}") from exc
        key = keys.get(key_id)
        if key is None:
            raise InvalidManifest(
                f"the manifest is signed with audit key id {key_id!r}, which is not configured"
            )
        if not hmac.compare_digest(mac, _mac(key, manifest._body(key_id))):
            raise InvalidManifest("the manifest's MAC does not match (altered, or made with another key)")
        if manifest.last_seq - manifest.first_seq + 1 != manifest.rows or manifest.first_seq < 1:
            raise InvalidManifest("first_seq, last_seq and rows do not agree")
        return manifest
