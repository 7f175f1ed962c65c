"""`chuong audit verify` / `checkpoint` as an operator runs them: a separate process (it owns its
own event loop and engine) pointed at the test database through CHUONG_DATABASE_URL."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from auth.audit.verify import Checkpoint
from tests.audit.helpers import tamper, write_rows

ROOT = Path(__file__).resolve().parents[2]


async def chuong_audit(database_url: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "auth.audit.cli",
        *args,
        cwd=ROOT,
        env={**os.environ, "CHUONG_DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_verify_exit_codes_and_checkpoint_round_trip(database_url, owner_engine, tmp_path):
    await write_rows(12)
    code, out, _ = await chuong_audit(database_url, "verify")
    assert code == 0 and "audit chain intact: 12 rows" in out

    checkpoint_file = tmp_path / "checkpoint.json"
    code, out, _ = await chuong_audit(database_url, "checkpoint", "--output", str(checkpoint_file))
    assert code == 0
    assert json.loads(out)["seq"] == 12
    assert Checkpoint.from_json(checkpoint_file.read_text()).seq == 12

    await tamper(owner_engine, "DELETE FROM audit_log WHERE seq > 9")
    code, out, _ = await chuong_audit(database_url, "verify")
    assert code == 0  # a truncated tail is invisible without the checkpoint…
    code, out, _ = await chuong_audit(database_url, "verify", "--checkpoint", str(checkpoint_file))
    assert code == 1  # …and caught with it
    assert "first broken sequence number: 10 (checkpoint_missing" in out

    await tamper(owner_engine, "UPDATE audit_log SET outcome = 'failure' WHERE seq = 7")
    code, out, _ = await chuong_audit(database_url, "verify", "--json")
    assert code == 1
    assert json.loads(out) | {"message": None} == {
        "ok": False,
        "rows_checked": 6,
        "head_seq": 6,
        "head_hash": json.loads(out)["head_hash"],
        "first_broken_seq": 7,
        "reason": "hash_mismatch",
        "checkpoint_seq": None,
        "archived_through_seq": 0,
        "detail": None,
        "message": None,
    }
    code, _, err = await chuong_audit(database_url, "checkpoint")
    assert code == 1 and "refusing to checkpoint" in err


async def test_forged_checkpoint_file_is_refused(database_url, tmp_path):
    await write_rows(3)
    path = tmp_path / "checkpoint.json"
    code, _, _ = await chuong_audit(database_url, "checkpoint", "-o", str(path))
    assert code == 0
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, "seq": 1}))
    code, _, err = await chuong_audit(database_url, "verify", "--checkpoint", str(path))
    assert code == 2 and "MAC does not match" in err
