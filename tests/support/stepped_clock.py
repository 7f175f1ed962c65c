"""A process whose wall clock steps, as an NTP step or an operator's `date -s` would step it, while
the rest of the machine keeps real time: libfaketime (Debian's `libfaketime`, installed by
scripts/dev.sh) preloaded into that process only.

The offset is read from a file on every clock read (``FAKETIME_NO_CACHE``: about 6 µs per read of
the wall clock instead of 0.1), so writing the file steps the clock at once. Only the wall clock
steps (``CLOCK_REALTIME``: ``time.time()``, ``datetime.now()``, OpenSSL's certificate checks);
the monotonic clock (``time.monotonic()``, hence asyncio's loop) does not
(``FAKETIME_DONT_FAKE_MONOTONIC``), as in reality: a step changes ``CLOCK_REALTIME`` only.

libfaketime with an unfaked monotonic clock makes ``time.sleep`` fail (EINVAL from its
``clock_nanosleep`` wrapper); nothing in a worker's event loop sleeps that way.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from subprocess import PIPE
from typing import Any

# Debian's libfaketime, under the machine's multiarch directory.
LIBRARY = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))), None)


class SteppedClock:
    def __init__(self, directory: Path) -> None:
        assert LIBRARY is not None, "libfaketime is missing: scripts/dev.sh installs Debian's libfaketime"
        self.path = directory / "faketime-offset"
        self.offset = 0
        self.step_to(0)

    def env(self) -> dict[str, str]:
        """The environment of the process whose clock this steps."""
        return {
            "LD_PRELOAD": str(LIBRARY),
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }

    def step_to(self, offset_seconds: int) -> None:
        """The process's wall clock reads real time plus ``offset_seconds`` from now on."""
        temporary = self.path.with_suffix(".new")
        temporary.write_text(f"{offset_seconds:+d}\n", encoding="ascii")
        os.replace(temporary, self.path)  # a reader never sees half a file
        self.offset = offset_seconds


# Prepended to the code `run_stepped` runs: `step(seconds)` steps the process's own wall clock, and
# `database_time()` reads PostgreSQL's clock (the real time here) as Unix seconds.
_PRELUDE = """
import asyncio, json, os, time
from sqlalchemy import text
from core.db import get_engine

def step(seconds):
    with open(os.environ["FAKETIME_TIMESTAMP_FILE"], "w", encoding="ascii") as offset:
        offset.write(f"{seconds:+d}\\n")

async def database_time():
    async with get_engine().connect() as connection:
        epoch = (await connection.execute(text("SELECT extract(epoch FROM clock_timestamp())"))).scalar_one()
    return float(epoch)
"""


def _command(code: str) -> list[str]:
    return [sys.executable, "-c", _PRELUDE + textwrap.dedent(code)]


def _env(clock: SteppedClock, database_url: str, env: dict[str, str] | None) -> dict[str, str]:
    return {**os.environ, "CHUONG_DATABASE_URL": database_url, **(env or {}), **clock.env()}


def _last_json(returncode: int | None, stdout: str, stderr: str) -> Any:
    assert returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


def run_stepped(
    clock: SteppedClock, code: str, *, database_url: str, env: dict[str, str] | None = None
) -> Any:
    """Runs ``code`` in a fresh Python process on ``clock`` (with ``env`` added to this one's) and
    returns the JSON it printed last."""
    result = subprocess.run(  # noqa: S603 - this interpreter on the test's own code
        _command(code),
        env=_env(clock, database_url, env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return _last_json(result.returncode, result.stdout, result.stderr)


async def run_stepped_async(
    clock: SteppedClock, code: str, *, database_url: str, env: dict[str, str] | None = None
) -> Any:
    """``run_stepped`` without blocking this event loop (it may serve the in-process emulator)."""
    process = await asyncio.create_subprocess_exec(
        *_command(code), env=_env(clock, database_url, env), stdout=PIPE, stderr=PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    return _last_json(process.returncode, stdout.decode(), stderr.decode())
