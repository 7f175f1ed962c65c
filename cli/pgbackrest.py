"""The pgBackRest commands the backup drill runs (``pgbackrest info`` and ``restore``), and the
PostgreSQL server binaries it starts the restored copy with.

pgBackRest does the backing up itself (full and differential backups, WAL archiving, AES-256
encryption, retention, two repositories: deploy/pgbackrest/); this module only reads its catalogue
and asks it to restore. Every pgBackRest option can also come from the environment
(``PGBACKREST_CONFIG``, ``PGBACKREST_STANZA``, ...), which pgBackRest reads itself.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class BackupError(Exception):
    """A step of the drill failed; the message says which and why."""


@dataclass(frozen=True)
class OsUser:
    """The account that owns the repositories and may run PostgreSQL (never root: postgres refuses).

    The drill's subprocesses run as this account; when the drill itself runs as root they are started
    through ``runuser``."""

    name: str

    @property
    def uid(self) -> int:
        return pwd.getpwnam(self.name).pw_uid

    def command(self, argv: list[str]) -> list[str]:
        if os.geteuid() == 0 and self.name != "root":
            return ["runuser", "-u", self.name, "--", *argv]
        return argv

    def run(self, argv: list[str], *, timeout: float, what: str) -> str:
        try:
            done = subprocess.run(  # noqa: S603 - fixed programs, arguments built here
                self.command(argv), capture_output=True, text=True, timeout=timeout, check=False
            )
        except FileNotFoundError as exc:
            raise BackupError(f"{what}: {argv[0]} is not installed") from exc
        except subprocess.TimeoutExpired as exc:
            raise BackupError(f"{what}: no answer within {timeout:.0f} s") from exc
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise BackupError(f"{what} failed (exit {done.returncode}): " + " | ".join(detail))
        return done.stdout

    def own(self, path: Path) -> None:
        if os.geteuid() == 0:
            os.chown(path, self.uid, -1)


@dataclass(frozen=True)
class BackupSet:
    label: str
    repo: int
    kind: str  # full, diff, incr
    started_at: int  # unix seconds
    stopped_at: int
    pg_version: str


@dataclass(frozen=True)
class PgBackRest:
    stanza: str
    user: OsUser
    config: Path | None = None
    timeout_seconds: float = 3600.0

    def _argv(self, *command: str) -> list[str]:
        argv = ["pgbackrest", f"--stanza={self.stanza}"]
        if self.config is not None:
            argv.append(f"--config={self.config}")
        return [*argv, *command]

    def latest(self, repo: int) -> BackupSet:
        """The newest backup of ``repo`` that pgBackRest lists as complete."""
        out = self.user.run(
            self._argv(f"--repo={repo}", "--output=json", "info"), timeout=120, what="pgbackrest info"
        )
        stanzas: list[dict[str, Any]] = json.loads(out)
        if not stanzas:
            raise BackupError(f"pgbackrest info: no stanza {self.stanza}")
        stanza = stanzas[0]
        versions = {db["id"]: str(db["version"]) for db in stanza.get("db", [])}
        sets = [
            b for b in stanza.get("backup", []) if not b.get("error") and b["database"]["repo-key"] == repo
        ]
        if not sets:
            status = stanza.get("status", {}).get("message", "no backup")
            raise BackupError(f"repository {repo} of stanza {self.stanza} holds no backup ({status})")
        newest = max(sets, key=lambda b: b["timestamp"]["stop"])
        return BackupSet(
            label=newest["label"],
            repo=repo,
            kind=newest["type"],
            started_at=newest["timestamp"]["start"],
            stopped_at=newest["timestamp"]["stop"],
            pg_version=versions.get(newest["database"]["id"], ""),
        )

    def restore(self, backup: BackupSet, *, into: Path) -> None:
        """Restore ``backup`` and every WAL segment archived after it into an empty directory.

        ``--archive-mode=off``: the restored copy must never push WAL into the production
        repositories (it would fork the archive's timeline)."""
        self.user.run(
            self._argv(
                f"--repo={backup.repo}",
                f"--set={backup.label}",
                f"--pg1-path={into}",
                "--archive-mode=off",
                "restore",
            ),
            timeout=self.timeout_seconds,
            what="pgbackrest restore",
        )


def postgres_bindir(pg_version: str, configured: Path | None) -> Path:
    """Where pg_ctl lives: the configured directory, Debian's per-version one, or the PATH."""
    candidates = [configured] if configured else []
    candidates.append(Path(f"/usr/lib/postgresql/{pg_version}/bin"))
    for directory in candidates:
        if directory is not None and (directory / "pg_ctl").exists():
            return directory
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise BackupError(f"pg_ctl for PostgreSQL {pg_version} not found (set --pg-bindir)")
