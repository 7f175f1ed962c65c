"""A throw-away PostgreSQL cluster on another port, for tests that must archive, restore, restart
or break a server: the machine's shared cluster is never touched.

The cluster runs as the ``postgres`` OS account (the server refuses root), listens on 127.0.0.1 on
a free port, trusts local connections, and is stopped and deleted on exit.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

OS_USER = "postgres"


def pg_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")
    return Path(found[-1]).parent


def as_os_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", OS_USER, "--", *argv] if os.geteuid() == 0 else argv


def run(argv: list[str], *, timeout: float = 120) -> str:
    done = subprocess.run(as_os_user(argv), capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr or done.stdout}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def give_to_os_user(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(OS_USER)
        for root, dirs, files in os.walk(path):
            for name in [*dirs, *files]:
                os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
        os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass(frozen=True)
class ScratchCluster:
    directory: Path
    port: int

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def url(self, database: str = "postgres", *, user: str = "postgres") -> str:
        return f"postgresql+asyncpg://{user}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, *, database: str = "postgres") -> str:
        return run(
            [str(pg_bindir() / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-d", database, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql]
        )  # fmt: skip


@contextlib.contextmanager
def scratch_cluster(
    *,
    settings: list[str] | None = None,
    directory: Path | None = None,
    hba: list[str] | None = None,
    initdb_args: list[str] | None = None,
) -> Iterator[ScratchCluster]:
    """initdb, start with ``settings`` (postgresql.conf lines) added and ``hba`` (pg_hba.conf
    lines) instead of initdb's trust-everything file, yield, stop, delete. Files the settings name
    (certificates) may be put in ``directory`` beforehand: it is handed to the server's account.
    ``initdb_args`` go to initdb (``--waldir`` on a small file system, say)."""
    base = directory or Path(tempfile.mkdtemp(prefix="chuong-scratch-pg-"))
    base.mkdir(exist_ok=True)
    give_to_os_user(base)
    cluster = ScratchCluster(directory=base, port=free_port())
    bindir = pg_bindir()
    try:
        run([
            str(bindir / "initdb"), "-D", str(cluster.data), "-A", "trust", "-U", "postgres", "--no-sync",
            *(initdb_args or []),
        ])  # fmt: skip
        lines = [
            f"port = {cluster.port}",
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{base}'",
            "fsync = off",
            *(settings or []),
        ]
        with open(cluster.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n".join(lines) + "\n")
        if hba is not None:
            (cluster.data / "pg_hba.conf").write_text("\n".join(hba) + "\n", encoding="utf-8")
        run(
            [str(bindir / "pg_ctl"), "-D", str(cluster.data), "-l", str(base / "postgres.log"), "-w", "start"]
        )
        yield cluster
    finally:
        if (cluster.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                run(
                    [str(bindir / "pg_ctl"), "-D", str(cluster.data), "-m", "immediate", "-w", "stop"],
                    timeout=60,
                )
        shutil.rmtree(base, ignore_errors=True)


def restart(cluster: ScratchCluster) -> float:
    """Stop the server at once (every session dies mid-statement, as in a crash or a failover)
    and start it again; returns how long it was down."""
    started = time.monotonic()
    run([str(pg_bindir() / "pg_ctl"), "-D", str(cluster.data), "-m", "immediate", "-w", "stop"])
    run([
        str(pg_bindir() / "pg_ctl"), "-D", str(cluster.data), "-l", str(cluster.directory / "postgres.log"),
        "-w", "start",
    ])  # fmt: skip
    return time.monotonic() - started
