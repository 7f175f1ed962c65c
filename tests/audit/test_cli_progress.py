"""`chuong audit verify` and `checkpoint` show their progress on a terminal, and nothing more
anywhere else: in CI, or when stderr is a pipe, the output is what it always was (issue 14)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.audit.helpers import write_rows
from tests.support.terminal import run_with_terminal_stderr

ROOT = Path(__file__).resolve().parents[2]


def _env(database_url: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "CHUONG_DATABASE_URL": database_url, "TERM": "xterm"}
    env.pop("CI", None)
    return env | extra


def _audit(*args: str) -> list[str]:
    return [sys.executable, "-m", "auth.audit.cli", *args]


async def test_verify_shows_a_bar_on_a_terminal_and_keeps_stdout_as_it_was(database_url):
    await write_rows(12)
    # --batch 5: three batches, so the bar moves (5, 10, 12 of 12).
    run = run_with_terminal_stderr(
        _audit("verify", "--batch", "5"), env=_env(database_url), cwd=ROOT, timeout=60
    )
    assert run.returncode == 0
    assert run.stdout.startswith("audit chain intact: 12 rows, head seq 12, hash ")
    assert run.stdout.count("\n") == 1  # the bar went to the terminal only
    assert "verifying the audit chain" in run.terminal
    assert "12/12" in run.terminal

    checkpoint = run_with_terminal_stderr(_audit("checkpoint"), env=_env(database_url), cwd=ROOT, timeout=60)
    assert checkpoint.returncode == 0
    assert json.loads(checkpoint.stdout)["seq"] == 12
    assert "verifying the audit chain" in checkpoint.terminal


async def test_nothing_extra_in_ci_or_on_a_pipe(database_url):
    await write_rows(3)
    in_ci = run_with_terminal_stderr(
        _audit("verify", "--batch", "1"), env=_env(database_url, CI="true"), cwd=ROOT, timeout=60
    )
    assert in_ci.returncode == 0
    assert in_ci.terminal == ""
    dumb = run_with_terminal_stderr(
        _audit("verify", "--batch", "1"), env=_env(database_url, TERM="dumb"), cwd=ROOT, timeout=60
    )
    assert dumb.terminal == ""
    piped = subprocess.run(  # noqa: S603 - our own CLI
        _audit("verify", "--batch", "1"), env=_env(database_url), cwd=ROOT, capture_output=True, check=False
    )
    assert piped.stderr == b""
    assert piped.stdout.decode() == dumb.stdout == in_ci.stdout
