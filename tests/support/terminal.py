"""Run a command whose stderr is a terminal (a pseudo-terminal) and whose stdout is a pipe, the way
an operator's shell runs `chuong … > report.txt`: progress shows on the terminal, the output goes to
the pipe untouched."""

from __future__ import annotations

import os
import pty
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TerminalRun:
    returncode: int
    stdout: str
    terminal: str  # everything written to the terminal, escape sequences included


def run_with_terminal_stderr(
    argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float
) -> TerminalRun:
    master, slave = pty.openpty()
    written: list[bytes] = []

    def drain() -> None:
        # Read while the command runs: a full terminal buffer would block its writes.
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the command closed the terminal (it exited)
                return
            if not chunk:
                return
            written.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        done = subprocess.run(  # noqa: S603 - the tests' own commands
            argv, stdout=subprocess.PIPE, stderr=slave, env=env, cwd=cwd, timeout=timeout, check=False
        )
    finally:
        os.close(slave)
        reader.join(timeout=10)
        os.close(master)
    return TerminalRun(
        returncode=done.returncode,
        stdout=done.stdout.decode(),
        terminal=b"".join(written).decode(errors="replace"),
    )
