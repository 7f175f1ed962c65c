"""Rotating the audit HMAC key without downtime (issue 14, item 3): keys have ids like the JWT keys,
each row names the key that chained it, the active key chains new rows, and verification picks
each row's key, so the chain verifies across a rotation (even while old and new processes write
side by side). A row naming a key that is not configured fails clearly."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from auth.audit.archive import archive_partitions, verify_archive
from auth.audit.chain import keyring
from auth.audit.verify import BreakReason, Checkpoint, InvalidCheckpoint, checkpoint_of, verify_chain
from core.clock import utcnow
from core.config import Settings
from core.db import transaction
from tests.audit.helpers import months_ago, set_clock, tamper, write_rows
from tests.audit.test_archive import chuong_audit, write_months

NEW_KEY = secrets.token_urlsafe(32)
NEWER_KEY = secrets.token_urlsafe(32)


async def verify(**options):
    async with transaction() as session:
        return await verify_chain(session, batch=3, **options)


async def key_ids(owner_engine) -> list[str]:
    async with owner_engine.connect() as conn:
        return list((await conn.execute(text("SELECT key_id FROM audit_log ORDER BY seq"))).scalars())


async def test_the_chain_verifies_across_a_rotation(database_url, owner_engine, audit_keys):
    await write_rows(3)  # CHUONG_AUDIT_HMAC_KEY alone: the key "default"
    # Step 1 of the rotation: every process learns the new key, the old one still chains.
    audit_keys(keys={"2027": NEW_KEY})
    await write_rows(1)
    # Step 2, a rolling restart: new processes chain with the new key while old ones still use
    # the old one; both append to the one chain.
    audit_keys(keys={"2027": NEW_KEY}, active="2027")
    await write_rows(2)
    audit_keys(keys={"2027": NEW_KEY})  # a process not restarted yet
    await write_rows(1)
    audit_keys(keys={"2027": NEW_KEY}, active="2027")
    await write_rows(2)

    assert await key_ids(owner_engine) == ["default"] * 4 + ["2027"] * 2 + ["default"] + ["2027"] * 2
    result = await verify()
    assert result.ok and result.rows_checked == 9, result.message

    # The operator's command, in a process of its own, reads the keys from its environment.
    code, out = await chuong_audit(database_url, "verify")
    assert code == 0 and "audit chain intact: 9 rows" in out, out


async def test_a_row_naming_an_unknown_key_fails_clearly(database_url, owner_engine, audit_keys):
    audit_keys(keys={"2027": NEW_KEY}, active="2027")
    await write_rows(4)
    await tamper(owner_engine, "UPDATE audit_log SET key_id = 'ghost' WHERE seq = 3")
    result = await verify()
    assert (result.ok, result.first_broken_seq, result.reason) == (False, 3, BreakReason.UNKNOWN_KEY)
    assert "key id 'ghost'" in result.message and "not configured" in result.message

    # Relabelling a row with another configured key does not help either: the MAC is the old key's.
    await tamper(owner_engine, "UPDATE audit_log SET key_id = 'default' WHERE seq = 3")
    result = await verify()
    assert (result.first_broken_seq, result.reason) == (3, BreakReason.HASH_MISMATCH)


async def test_dropping_a_key_while_its_rows_are_kept_fails_clearly(database_url, audit_keys):
    await write_rows(2)
    audit_keys(keys={"2027": NEW_KEY}, active="2027", legacy=False)  # the old key removed too early
    await write_rows(1)
    result = await verify()
    assert (result.ok, result.first_broken_seq, result.reason) == (False, 1, BreakReason.UNKNOWN_KEY)
    assert "key id 'default'" in result.message


async def test_checkpoints_and_archives_made_before_a_rotation_still_verify(
    database_url, owner_engine, audit_keys, tmp_path
):
    await write_months({2: 3, 1: 1})
    async with transaction() as session:
        checkpoint_json = checkpoint_of(await verify_chain(session)).to_json()
    [archived] = await archive_partitions(
        owner_engine, before=months_ago(1).date(), output_dir=tmp_path, now=utcnow(), keys=keyring()
    )
    assert archived.path is not None

    audit_keys(keys={"2027": NEW_KEY}, active="2027")
    await write_rows(2)
    checkpoint = Checkpoint.from_json(checkpoint_json)  # signed with "default", still configured
    result = await verify(checkpoint=checkpoint)
    assert result.ok and result.checkpoint_seq == 4 and result.archived_through_seq == 3, result.message
    assert verify_archive(archived.path, keys=keyring()).last_seq == 3
    # What is signed now names the new key.
    assert json.loads(checkpoint_of(result).to_json())["key_id"] == "2027"

    # A checkpoint of the first version (no key id) was made with CHUONG_AUDIT_HMAC_KEY.
    first_version = Checkpoint(seq=4, hash=checkpoint.hash, exported_at=dt.datetime.now(dt.UTC))
    document = {
        "version": 1,
        "seq": 4,
        "hash": checkpoint.hash,
        "exported_at": first_version.exported_at.isoformat(timespec="microseconds"),
    }
    default_key = os.environ["CHUONG_AUDIT_HMAC_KEY"].encode()
    document["mac"] = first_version.mac(key=default_key, key_id="default", version=1)
    assert Checkpoint.from_json(json.dumps(document)) == first_version

    audit_keys(keys={"2027": NEW_KEY}, active="2027", legacy=False)
    with pytest.raises(InvalidCheckpoint, match="key id 'default', which is not configured"):
        Checkpoint.from_json(checkpoint_json)


async def test_archive_months_chained_with_several_keys(database_url, owner_engine, audit_keys, tmp_path):
    await write_months({2: 2})
    audit_keys(keys={"2027": NEW_KEY, "2028": NEWER_KEY}, active="2027")
    set_clock(months_ago(2, day=20))
    await write_rows(2)
    audit_keys(keys={"2027": NEW_KEY, "2028": NEWER_KEY}, active="2028")
    set_clock(months_ago(0))
    await write_rows(1)
    [archived] = await archive_partitions(
        owner_engine, before=months_ago(1).date(), output_dir=tmp_path, now=utcnow(), keys=keyring()
    )
    assert archived.path is not None
    manifest = verify_archive(archived.path, keys=keyring())
    assert (manifest.first_seq, manifest.last_seq) == (1, 4)
    assert (await verify()).ok


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"audit_hmac_key": None}, "no audit key"),
        ({"audit_hmac_keys": '{"2027": "x"}', "audit_active_kid": "2028"}, "'2028' is not a configured"),
        ({"audit_hmac_keys": '{"default": "x"}'}, "that id is CHUONG_AUDIT_HMAC_KEY's"),
        ({"audit_hmac_keys": '["x"]'}, "must be a JSON object"),
        ({"audit_hmac_keys": '{"a b": "x"}'}, "audit key ids must be"),
    ],
)
def test_unusable_audit_key_settings_are_refused_at_start_up(values, problem):
    base = {
        "field_encryption_keys": "k",
        "audit_hmac_key": "legacy",
        "jwt_keys": '{"a": "b"}',
        "jwt_active_kid": "a",
        "token_pepper": "p",
    }
    with pytest.raises(ValidationError, match=problem):
        Settings(_env_file=None, **{**base, **values})


def test_the_single_key_of_older_installations_is_the_key_default():
    settings = Settings(
        _env_file=None,
        field_encryption_keys="k",
        audit_hmac_key="legacy",
        jwt_keys='{"a": "b"}',
        jwt_active_kid="a",
        token_pepper="p",
    )
    assert settings.audit_keyring() == {"default": b"legacy"}
    assert settings.audit_signing_kid() == "default"
