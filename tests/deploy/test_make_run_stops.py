"""`make run` stops on Ctrl-C without an error report (issue 14).

The real Makefile and scripts/dev.sh run in a pseudo-terminal, as a developer runs them, with
stand-ins for the programs they start (PostgreSQL's and Redis's clients, the venv's python and
chuong), so the test checks the script's own process handling in a few seconds: Ctrl-C reaches
the whole foreground process group, every child stops, the script waits for them and exits 0, and
make prints no "Error 130". The stand-ins behave like the real programs: the API and the workers
take SIGINT themselves (uvicorn, arq), the emulator is stopped by the script's SIGTERM."""

from __future__ import annotations

import hashlib
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FAKE_CHUONG = """\
#!{python}
import os, signal, sys, time
command = sys.argv[1]
if command in ("migrate", "init-env"):
    print("database is at the latest migration")
    sys.exit(0)
name = " ".join(sys.argv[1:4])
with open(os.path.join(os.environ["FAKE_PIDS"], str(os.getpid())), "w") as f:
    f.write(name)
if command == "serve" and os.environ.get("FAKE_SERVE_IMPORT_SECONDS"):
    # Still importing: Python's own SIGINT handler (a KeyboardInterrupt traceback) if it gets one.
    print("serve importing", flush=True)
    time.sleep(float(os.environ["FAKE_SERVE_IMPORT_SECONDS"]))
def stop(signum, frame):
    print(f"{{name}} stopped on {{signal.Signals(signum).name}}", flush=True)
    sys.exit(0)
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
print(f"{{name}} running", flush=True)
while True:
    time.sleep(0.05)
"""

# `python -m emulator --ca-path CA --credentials-dir DIR`: writes the key file dev.sh waits for.
FAKE_PYTHON = """\
#!{python}
import os, sys, time
args = sys.argv[1:]
credentials = args[args.index("--credentials-dir") + 1]
os.makedirs(credentials, exist_ok=True)
open(os.path.join(credentials, "apns-key.p8"), "w").close()
with open(os.path.join(os.environ["FAKE_PIDS"], str(os.getpid())), "w") as f:
    f.write("emulator")
print("emulator running", flush=True)
while True:
    time.sleep(0.05)
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A checkout with the real Makefile, dev.sh and pyproject.toml, and stand-in programs."""
    for name in ("Makefile", "pyproject.toml", "scripts/dev.sh"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    venv = tmp_path / ".venv"
    _write(venv / "bin" / "python", FAKE_PYTHON.format(python=sys.executable))
    _write(venv / "bin" / "chuong", FAKE_CHUONG.format(python=sys.executable))
    # Installed already: dev.sh skips pip when this stamp matches pyproject.toml.
    digest = hashlib.sha1((tmp_path / "pyproject.toml").read_bytes()).hexdigest()[:12]  # noqa: S324
    (venv / f".installed-{digest}").touch()
    (tmp_path / ".env").write_text("", encoding="utf-8")
    _write(tmp_path / "bin" / "pg_isready", "#!/bin/sh\nexit 0\n")
    _write(tmp_path / "bin" / "redis-cli", "#!/bin/sh\necho PONG\n")
    _write(tmp_path / "bin" / "psql", "#!/bin/sh\necho 1\n")
    (tmp_path / "pids").mkdir()
    return tmp_path


def _fresh_signals() -> None:
    """In a child before exec: no signal blocked or ignored, as in a login shell. A process inherits
    both from its parent across exec; under pytest-xdist a test process was left with SIGINT and
    SIGTERM blocked by an earlier test, and then make and dev.sh never saw the Ctrl-C, nor the
    children the script's SIGTERM."""
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(number, signal.SIG_DFL)


def _run_and_interrupt(
    checkout: Path, argv: list[str], *, wait_for: list[bytes], extra_env: dict[str, str] | None = None
) -> tuple[str, int]:
    """Start ``argv`` in a pseudo-terminal, press Ctrl-C once every line of ``wait_for`` is printed
    (as often as it is listed), and return everything printed after that and the exit code
    (negative: killed by that signal)."""
    env = {
        **os.environ,
        "PATH": f"{checkout / 'bin'}:{os.environ['PATH']}",
        "FAKE_PIDS": str(checkout / "pids"),
        "CHUONG_HIGH_WORKERS": "2",
        **(extra_env or {}),
    }
    pid, fd = pty.fork()
    if pid == 0:  # the child: the session leader of the pseudo-terminal, like a login shell's job
        _fresh_signals()
        os.chdir(checkout)
        os.execvpe(argv[0], argv, env)  # noqa: S606 - the checkout's own Makefile and script
    output = b""

    def read(until: list[bytes] | None, seconds: float) -> None:
        nonlocal output
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: every process holding the terminal has exited
                return
            if not chunk:
                return
            output += chunk
            if until is not None and all(output.count(line) >= until.count(line) for line in until):
                return
        raise AssertionError(f"timed out; printed so far:\n{output.decode(errors='replace')}")

    try:
        read(wait_for, 30)
        before = len(output)
        os.write(fd, b"\x03")  # Ctrl-C: the terminal sends SIGINT to its foreground process group
        read(None, 30)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return output[before:].decode(errors="replace"), os.waitstatus_to_exitcode(status)


# Ctrl-C once each has set up its signal handling (a child still starting would be stopped by the
# script's SIGTERM without a word, which is right but not what these tests look at).
EVERY_CHILD_RUNNING = [
    b"emulator running",
    b"worker --queue high running",
    b"worker --queue high running",
    b"worker --queue high running",  # the urgent worker (`--urgent-only`, past the stand-in's name)
    b"worker --queue bulk running",
    b"serve --host 127.0.0.1 running",
]


def _assert_every_child_stopped(checkout: Path) -> None:
    started = list((checkout / "pids").iterdir())
    assert started, "no child was started"
    for record in started:
        with pytest.raises(ProcessLookupError):
            os.kill(int(record.name), 0)


pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def test_ctrl_c_stops_make_run_with_no_error_report(checkout: Path) -> None:
    printed, code = _run_and_interrupt(checkout, ["make", "run"], wait_for=EVERY_CHILD_RUNNING)
    # make itself gets the SIGINT and dies of it, as any interrupted program; what it must not do
    # is report the script as failed. (Failed once in CI at load 9 with make's exit status 2,
    # output not kept: the assertion now shows what was printed.)
    assert code == -signal.SIGINT, printed
    assert "make: ***" not in printed and "Error" not in printed, printed
    assert "Traceback" not in printed, printed
    # Each stopped in its own way, and before the script returned (their lines come before EOF).
    assert "serve --host 127.0.0.1 stopped on SIGINT" in printed
    # The high workers stopped (one may report the script's SIGTERM too, when it lands while the
    # SIGINT is being handled: seen once in CI); that none is left is checked just below.
    assert printed.count("worker --queue high stopped") >= 3, printed  # the urgent one among them
    assert "worker --queue bulk stopped" in printed
    _assert_every_child_stopped(checkout)


def test_the_script_exits_0_on_ctrl_c(checkout: Path) -> None:
    printed, code = _run_and_interrupt(checkout, ["scripts/dev.sh", "run"], wait_for=EVERY_CHILD_RUNNING)
    assert code == 0, printed
    _assert_every_child_stopped(checkout)


def test_ctrl_c_while_the_api_is_still_starting_prints_no_traceback(checkout: Path) -> None:
    printed, code = _run_and_interrupt(
        checkout,
        ["scripts/dev.sh", "run"],
        wait_for=[b"serve importing"],
        extra_env={"FAKE_SERVE_IMPORT_SECONDS": "20"},
    )
    assert code == 0, printed
    assert "Traceback" not in printed and "KeyboardInterrupt" not in printed, printed
    _assert_every_child_stopped(checkout)


def test_a_failing_api_still_fails_the_script(checkout: Path) -> None:
    # The trap must not turn a real failure into success: only an interrupt exits 0.
    failing_api = '#!/bin/sh\ncase "$1" in migrate) exit 0 ;; serve) exit 3 ;; esac\nexec sleep 30\n'
    _write(checkout / ".venv" / "bin" / "chuong", failing_api)
    env = {
        **os.environ,
        "PATH": f"{checkout / 'bin'}:{os.environ['PATH']}",
        "FAKE_PIDS": str(checkout / "pids"),
        "CHUONG_HIGH_WORKERS": "1",
    }
    done = subprocess.run(  # noqa: S603 - the checkout's own script
        [str(checkout / "scripts" / "dev.sh"), "run"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=_fresh_signals,
    )
    assert done.returncode == 3, done.stderr
