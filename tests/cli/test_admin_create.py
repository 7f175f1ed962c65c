"""`chuong admin create` bootstraps the first system admin and prints the TOTP URI once."""

import os
import subprocess
import sys

from sqlalchemy import text


def run_cli(
    database_url: str, *args: str, password: str = "quiet rivers carry 9 lanterns"
) -> subprocess.CompletedProcess:
    env = {**os.environ, "CHUONG_DATABASE_URL": database_url, "ADMIN_PASSWORD": password}
    return subprocess.run(  # noqa: S603 (our own CLI)
        [sys.executable, "-m", "cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_admin_create_prints_a_totp_uri_once_and_refuses_a_second_admin(database_url, owner_engine):
    args = (
        "admin",
        "create",
        "--username",
        "root",
        "--full-name",
        "Quản trị",
        "--password-env",
        "ADMIN_PASSWORD",
    )
    first = run_cli(database_url, *args)
    assert first.returncode == 0, first.stderr
    assert "otpauth://totp/" in first.stdout
    second = run_cli(database_url, *args[:3], "root2", *args[4:])
    assert second.returncode == 1
    assert "already exists" in second.stderr
    weak = run_cli(database_url, *args, password="password")
    assert weak.returncode == 1
    async with owner_engine.connect() as conn:
        users = (await conn.execute(text("SELECT username, role FROM users"))).all()
        audit = (await conn.execute(text("SELECT action, actor_kind FROM audit_log ORDER BY seq"))).all()
    assert [(u.username, u.role) for u in users] == [("root", "system_admin")]
    assert ("user.created", "system") in [(a.action, a.actor_kind) for a in audit]
