"""The hash chain: canonical JSON of a row, keyed by one of the audit HMAC keys from settings.

Keys have ids (CHUONG_AUDIT_HMAC_KEYS, core/config.py); each row stores the id of the key that
chained it, so a rotation needs no downtime: processes that still chain with the old key and
those that already use the new one append to the same chain, and verification picks each row's
key by its id."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from typing import Any

from auth.audit.models import HASHED_FIELDS
from core.config import get_settings


def jsonable(value: Any) -> Any:
    """A column value as it is hashed (and as archive files store it)."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="microseconds")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def canonical(row: Mapping[str, Any]) -> bytes:
    body = {name: jsonable(row[name]) for name in HASHED_FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def keyring() -> dict[str, bytes]:
    """Every configured audit key by its id (they all verify)."""
    return get_settings().audit_keyring()


def signing_key() -> tuple[str, bytes]:
    """The id and the secret of the key that chains new rows and signs checkpoints and archives."""
    settings = get_settings()
    kid = settings.audit_signing_kid()
    return kid, settings.audit_keyring()[kid]


def chain_hash(prev_hash: str, row: Mapping[str, Any], *, key: bytes) -> str:
    mac = hmac.new(key, prev_hash.encode("ascii") + b"\n", hashlib.sha256)
    mac.update(canonical(row))
    return mac.hexdigest()


def normalise_details(value: Any) -> Any:
    """Details are stored as JSONB and hashed as JSON: keep only types that round-trip exactly
    through PostgreSQL (floats and odd types become strings; NUL is not allowed in JSONB)."""
    if isinstance(value, Mapping):
        return {str(k).replace("\x00", ""): normalise_details(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(normalise_details(v) for v in value)
    if isinstance(value, list | tuple):
        return [normalise_details(v) for v in value]
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return value.replace("\x00", "")
    return str(jsonable(value))
