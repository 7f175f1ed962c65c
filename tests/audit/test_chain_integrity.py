"""The chain detects every kind of tampering, and the database refuses changes in the first place."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from auth import audit
from auth.audit.verify import (
    BreakReason,
    Checkpoint,
    InvalidCheckpoint,
    checkpoint_of,
    export_checkpoint,
    load_checkpoint,
    save_checkpoint,
    verify_chain,
)
from core.db import transaction
from tests.audit.helpers import head_seq, make_tree, populate_via_api, tamper, write_rows


async def verify(checkpoint: Checkpoint | None = None, batch: int = 3):
    # A small batch, so that every test also crosses several keyset pages.
    async with transaction() as session:
        return await verify_chain(session, checkpoint=checkpoint, batch=batch)


async def test_chain_written_by_real_api_calls_verifies(client, owner_engine):
    tree = await make_tree()
    await populate_via_api(client, tree)
    result = await verify()
    n = await head_seq(owner_engine)
    assert n >= 5
    assert result.ok, result.message
    assert (result.rows_checked, result.head_seq, result.first_broken_seq) == (n, n, None)
    async with owner_engine.connect() as conn:
        actions = set((await conn.execute(text("SELECT action FROM audit_log"))).scalars())
    assert {"auth.login", "unit.created", "auth.login_failed"} <= actions


async def test_empty_chain_verifies(database_url):
    result = await verify()
    assert result.ok and result.rows_checked == 0 and result.head_seq == 0


async def test_edited_row_is_named(database_url, owner_engine):
    await write_rows(8)
    await tamper(owner_engine, "UPDATE audit_log SET details = '{\"x\": 1}' WHERE seq = 5")
    result = await verify()
    assert not result.ok
    assert (result.first_broken_seq, result.reason) == (5, BreakReason.HASH_MISMATCH)
    assert result.head_seq == 4 and result.rows_checked == 4
    assert "first broken sequence number: 5" in result.message


async def test_deleted_middle_row_is_named(database_url, owner_engine):
    await write_rows(8)
    await tamper(owner_engine, "DELETE FROM audit_log WHERE seq = 6")
    result = await verify()
    assert (result.ok, result.first_broken_seq, result.reason) == (False, 6, BreakReason.SEQ_GAP)


async def test_deleted_and_renumbered_rows_are_named(database_url, owner_engine):
    # A careful attacker closes the gap: the links no longer match.
    await write_rows(8)
    await tamper(owner_engine, "DELETE FROM audit_log WHERE seq = 3")
    # In two steps, so that no intermediate seq collides with the primary key.
    await tamper(owner_engine, "UPDATE audit_log SET seq = -seq WHERE seq > 3")
    await tamper(owner_engine, "UPDATE audit_log SET seq = -seq - 1 WHERE seq < 0")
    result = await verify()
    assert (result.first_broken_seq, result.reason) == (3, BreakReason.PREV_HASH_MISMATCH)


async def test_deleted_first_row_breaks_genesis(database_url, owner_engine):
    await write_rows(4)
    await tamper(owner_engine, "DELETE FROM audit_log WHERE seq = 1")
    result = await verify()
    assert (result.first_broken_seq, result.reason) == (1, BreakReason.GENESIS)


async def test_forged_row_without_the_key_is_named(database_url, owner_engine):
    await write_rows(5)
    async with owner_engine.connect() as conn:
        head = (await conn.execute(text("SELECT hash FROM audit_log WHERE seq = 5"))).scalar_one()
    forged_hash = hashlib.sha256(b"no key" + head.encode()).hexdigest()
    # Plain INSERT: the app role may insert, so no trigger is needed to forge.
    await tamper(
        owner_engine,
        "INSERT INTO audit_log (seq, occurred_at, actor_kind, action, outcome, details, prev_hash, hash)"
        " VALUES (6, now(), 'system', 'user.created', 'success', '{}', :prev, :hash)",
        prev=head,
        hash=forged_hash,
    )
    await write_rows(2)  # honest writers keep chaining onto the forged row
    result = await verify()
    assert (result.first_broken_seq, result.reason) == (6, BreakReason.HASH_MISMATCH)


async def test_tail_truncation_is_caught_only_with_a_checkpoint(database_url, owner_engine, tmp_path):
    await write_rows(10)
    async with transaction() as session:
        checkpoint = await export_checkpoint(session)
    assert checkpoint.seq == 10
    path = tmp_path / "checkpoint.json"
    save_checkpoint(checkpoint, path)
    await tamper(owner_engine, "DELETE FROM audit_log WHERE seq > 7")
    assert (await verify()).ok  # the shorter chain is self-consistent
    result = await verify(load_checkpoint(path))
    assert (result.ok, result.first_broken_seq, result.reason) == (False, 8, BreakReason.CHECKPOINT_MISSING)


async def test_chain_rewritten_past_the_checkpoint_is_caught(database_url, owner_engine):
    await write_rows(6)
    async with transaction() as session:
        checkpoint = checkpoint_of(await verify_chain(session))
    # Someone with the key truncates and re-appends: the chain is valid but not the one certified.
    await tamper(owner_engine, "DELETE FROM audit_log WHERE seq > 4")
    await write_rows(3, action="test.replacement")
    assert (await verify()).ok
    result = await verify(checkpoint)
    assert (result.first_broken_seq, result.reason) == (6, BreakReason.CHECKPOINT_MISMATCH)


async def test_checkpoint_holds_while_the_chain_grows(database_url):
    await write_rows(3)
    async with transaction() as session:
        checkpoint = await export_checkpoint(session)
    await write_rows(4)
    result = await verify(checkpoint)
    assert result.ok and result.head_seq == 7 and result.checkpoint_seq == 3


def test_checkpoint_file_is_authenticated():
    checkpoint = Checkpoint(seq=42, hash="ab" * 32, exported_at=dt.datetime.now(dt.UTC))
    assert Checkpoint.from_json(checkpoint.to_json()) == checkpoint
    document = json.loads(checkpoint.to_json())
    document["seq"] = 7  # an attacker lowering the checkpoint to hide a truncation
    with pytest.raises(InvalidCheckpoint, match="MAC"):
        Checkpoint.from_json(json.dumps(document))
    for broken in ("not json", "{}", json.dumps({**document, "seq": "7"})):
        with pytest.raises(InvalidCheckpoint):
            Checkpoint.from_json(broken)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET outcome = 'failure' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 1",
        "TRUNCATE audit_log",
    ],
)
async def test_triggers_reject_changes_even_for_the_superuser(database_url, owner_engine, statement):
    await write_rows(2)
    with pytest.raises(DBAPIError, match="append-only"):
        async with owner_engine.begin() as conn:
            await conn.execute(text(statement))
    assert await head_seq(owner_engine) == 2
    assert (await verify()).ok


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET outcome = 'failure' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 1",
        "TRUNCATE audit_log",
    ],
)
async def test_app_role_has_no_privilege_to_change_rows(database_url, statement):
    await write_rows(2)
    engine = create_async_engine(database_url)
    try:
        with pytest.raises(DBAPIError, match="permission denied"):
            async with engine.begin() as conn:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def test_concurrent_writers_form_one_unbroken_chain(database_url, owner_engine):
    async def writer(i: int) -> None:
        async with transaction() as session:
            audit.record(session, action="test.concurrent", details={"writer": i, "part": 1})
            await asyncio.sleep(0.001 * (i % 5))  # let the transactions interleave
            audit.record(session, action="test.concurrent", details={"writer": i, "part": 2})

    await asyncio.gather(*(writer(i) for i in range(20)))
    async with owner_engine.connect() as conn:
        count, distinct, top = (
            await conn.execute(text("SELECT count(*), count(DISTINCT seq), max(seq) FROM audit_log"))
        ).one()
        pairs = (
            await conn.execute(
                text("SELECT details->>'writer', array_agg(seq ORDER BY seq) FROM audit_log GROUP BY 1")
            )
        ).all()
    assert count == distinct == top == 40
    # Each transaction's rows are written as one batch, so they are adjacent in the chain.
    assert all(seqs[1] == seqs[0] + 1 for _, seqs in pairs)
    result = await verify(batch=7)
    assert result.ok and result.rows_checked == 40
