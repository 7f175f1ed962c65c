"""Re-encrypting every encrypted column under the first field-encryption key, after a new key was
put first in CHUONG_FIELD_ENCRYPTION_KEYS (`chuong keys rotate-fields`, docs/security.md "TLS and
key rotation").

The columns are found by their mark (``info={FIELD_ENCRYPTED: True}``, core/crypto.py), so a new
encrypted column is rotated without touching this file. Each column is read in primary-key order,
one batch per transaction: no row is locked longer than one batch, and the service keeps running.

* Idempotent and resumable: a value already under the first key is left alone, so a run stopped
  halfway (or run twice) only does what is left.
* Never overwrites an edit: a value is written back only if it is still the one that was read
  (compare-and-set in the UPDATE); a value changed meanwhile was written by the service with the
  first key already, or is caught by the check pass.
* A value no listed key opens is counted, never touched: a key was removed too early.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, LargeBinary, MetaData, Table, select, update, values
from sqlalchemy import column as sql_column

from core.crypto import FIELD_ENCRYPTED, reencrypt, under_first_key
from core.db import transaction

DEFAULT_BATCH_SIZE = 500

# Called after each batch with the column's name and the values examined so far.
Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class EncryptedColumn:
    table: Table
    key: Column[Any]
    value: Column[Any]

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.value.name}"


@dataclass
class ColumnTally:
    column: str
    examined: int = 0
    current: int = 0  # already under the first key
    old_key: int = 0  # under another listed key when read
    rewritten: int = 0  # of those, re-encrypted and written back
    unreadable: int = 0  # under no listed key: left as it is

    @property
    def changed_meanwhile(self) -> int:
        """Old-key values that changed between the read and the write (left to the service's edit)."""
        return self.old_key - self.rewritten

    def as_dict(self) -> dict[str, int | str]:
        return {
            "column": self.column,
            "examined": self.examined,
            "current": self.current,
            "old_key": self.old_key,
            "rewritten": self.rewritten,
            "unreadable": self.unreadable,
        }


def encrypted_columns(metadata: MetaData) -> list[EncryptedColumn]:
    found = []
    for table in metadata.sorted_tables:
        for value in table.columns:
            if not value.info.get(FIELD_ENCRYPTED):
                continue
            keys = list(table.primary_key.columns)
            if len(keys) != 1:  # the batches walk one key column
                raise ValueError(f"{table.name}.{value.name}: an encrypted column needs a one-column key")
            found.append(EncryptedColumn(table=table, key=keys[0], value=value))
    return found


async def rotate_column(
    column: EncryptedColumn,
    *,
    write: bool,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> ColumnTally:
    """Walk every value of ``column``; with ``write``, re-encrypt those under an older key,
    otherwise only count them (the check)."""
    tally = ColumnTally(column=column.name)
    after: Any = None
    while True:
        after = await _batch(column, tally, after=after, batch_size=batch_size, write=write)
        if progress is not None:
            progress(column.name, tally.examined)
        if after is None:
            return tally


async def _batch(
    column: EncryptedColumn, tally: ColumnTally, *, after: Any, batch_size: int, write: bool
) -> Any:
    """One batch in its own transaction; the last key read, or None when the column is done."""
    query = select(column.key, column.value).where(column.value.is_not(None))
    if after is not None:
        query = query.where(column.key > after)
    async with transaction() as session:
        rows = (await session.execute(query.order_by(column.key).limit(batch_size))).all()
        changes: list[tuple[Any, bytes, bytes]] = []
        for key, value in rows:
            tally.examined += 1
            if under_first_key(value):
                tally.current += 1
                continue
            try:
                changes.append((key, value, reencrypt(value)))
            except ValueError:
                tally.unreadable += 1
                continue
            tally.old_key += 1
        if write and changes:
            written = await session.execute(_compare_and_set(column, changes))
            tally.rewritten += len(written.all())
    return rows[-1][0] if len(rows) == batch_size else None


def _compare_and_set(column: EncryptedColumn, changes: list[tuple[Any, bytes, bytes]]) -> Any:
    """One UPDATE ... FROM (VALUES ...) for the batch, matching the value that was read."""
    given = values(
        sql_column("row_key", column.key.type),
        sql_column("old_value", LargeBinary()),
        sql_column("new_value", LargeBinary()),
        name="given",
    ).data(changes)
    return (
        update(column.table)
        .where(column.key == given.c.row_key, column.value == given.c.old_value)
        .values({column.value.name: given.c.new_value})
        .returning(column.key)
    )
