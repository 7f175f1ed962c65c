"""`chuong keys` as an operator runs it: a separate process pointed at the test database, with the
new key first in CHUONG_FIELD_ENCRYPTION_KEYS. It reports, exits 1 while anything is left under an
old key (or under none), audits the run, and the audit chain still verifies afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import text

from auth.audit.verify import verify_chain
from auth.roles import Role
from core.db import transaction
from tests.keys.conftest import UseKeys
from tests.support.factories import make_account, make_unit

ROOT = Path(__file__).resolve().parents[2]


async def chuong_keys(database_url: str, keys: list[bytes], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "keys",
        *args,
        cwd=ROOT,
        env={
            **os.environ,
            "CHUONG_DATABASE_URL": database_url,
            "CHUONG_FIELD_ENCRYPTION_KEYS": ",".join(key.decode() for key in keys),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_rotate_fields_reencrypts_reports_and_audits(
    database_url, use_keys: UseKeys, key_a, key_b
) -> None:
    use_keys(key_a)
    unit = await make_unit()
    for _ in range(3):
        await make_account(role=Role.EDITOR, unit=unit)

    code, out, err = await chuong_keys(database_url, [key_b, key_a], "rotate-fields", "--check")
    assert code == 1, out + err
    assert "3 value(s) still under an older key" in err

    code, out, err = await chuong_keys(database_url, [key_b, key_a], "rotate-fields", "--batch-size", "2")
    assert code == 0, out + err
    assert "the other keys may be removed" in out
    assert "totp_credentials.secret_enc" in out

    code, out, err = await chuong_keys(database_url, [key_b], "rotate-fields", "--check")  # A gone
    assert code == 0, out + err

    async with transaction() as session:
        actions = (
            await session.execute(
                text("SELECT action, details FROM audit_log WHERE action LIKE 'keys.%' ORDER BY seq")
            )
        ).all()
        assert [a.action for a in actions] == ["keys.field_rotation_started", "keys.field_rotation_finished"]
        finished = (
            actions[1].details if isinstance(actions[1].details, dict) else json.loads(actions[1].details)
        )
        assert finished["left_under_old_keys"] == 0
        assert (await verify_chain(session)).ok


async def test_a_value_under_no_listed_key_fails_the_run(
    database_url, use_keys: UseKeys, key_a, key_b
) -> None:
    use_keys(key_a)
    await make_account(role=Role.EDITOR, unit=await make_unit())

    code, _, err = await chuong_keys(database_url, [key_b], "rotate-fields")  # A removed too early

    assert code == 1
    assert "1 value(s) open with none of the listed keys" in err


async def test_new_keys_are_printed_with_the_next_steps() -> None:
    code, out, err = await chuong_keys(
        "postgresql+asyncpg://unused/unused", [Fernet.generate_key()], "new-field-key"
    )
    assert code == 0
    Fernet(out.strip().encode())  # a usable key
    assert "rotate-fields" in err

    code, out, err = await chuong_keys(
        "postgresql+asyncpg://unused/unused", [Fernet.generate_key()], "new-jwt-key"
    )
    assert code == 0
    [(kid, secret)] = json.loads(out).items()
    assert len(secret) >= 32
    assert f"CHUONG_JWT_ACTIVE_KID={kid}" in err
