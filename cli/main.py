"""The ``chuong`` command: migrate, serve, worker, admin create, audit (verify, checkpoint, archive,
partitions), backup, keys, devices, demo, init-env (``[project.scripts]``; ``python -m cli`` from a
checkout).

The outer layer: it assembles the packages' own sub-commands and starts the transports, so it may
import any package and no package imports it. The provider emulator is development tooling
outside the shipped package: ``python -m emulator``."""

from __future__ import annotations

import asyncio
import getpass
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from auth.audit.cli import app as audit_app
from cli.backup import app as backup_app
from cli.keys import app as keys_app
from console.demo import cli as demo_app
from devices.cli import app as devices_app

app = typer.Typer(no_args_is_help=True, help="Chuông notification service")
admin_app = typer.Typer(no_args_is_help=True, help="Accounts")
app.add_typer(admin_app, name="admin")


def _refuse_unsafe_production(*, extra_problems: list[str] | None = None) -> None:
    """Exit non-zero naming every missing or unsafe setting (production only, core/production.py)."""
    from core.config import get_settings
    from core.production import ProductionConfigError, ensure_production_ready

    try:
        ensure_production_ready(get_settings(), extra_problems=extra_problems or [])
    except ProductionConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from exc


@app.command("init-env")
def init_env(path: Annotated[Path, typer.Option(help="File to write")] = Path(".env")) -> None:
    """Write a .env with freshly generated secrets (development and first installs). Never
    overwrites an existing file."""
    from cryptography.fernet import Fernet

    if path.exists():
        typer.echo(f"{path} exists; leaving it alone")
        return
    kid = "k" + secrets.token_hex(4)
    lines = [
        f"CHUONG_FIELD_ENCRYPTION_KEYS={Fernet.generate_key().decode()}",
        f"CHUONG_AUDIT_HMAC_KEY={secrets.token_urlsafe(48)}",
        f'CHUONG_JWT_KEYS={{"{kid}": "{secrets.token_urlsafe(48)}"}}',
        f"CHUONG_JWT_ACTIVE_KID={kid}",
        f"CHUONG_TOKEN_PEPPER={secrets.token_urlsafe(48)}",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    typer.echo(f"wrote {path} (keep it secret; back it up: losing it loses encrypted fields)")


@app.command()
def migrate(
    database_url: Annotated[
        str | None, typer.Option(envvar="CHUONG_MIGRATION_DATABASE_URL", help="Owner connection for DDL")
    ] = None,
) -> None:
    """Apply database migrations (run as the schema owner, not the app role)."""
    from alembic import command

    from cli.migration_config import alembic_config

    command.upgrade(alembic_config(database_url), "head")
    typer.echo("database is at the latest migration")


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
    reload: bool = False,
) -> None:
    """Run the HTTP API and the web console (cli/asgi.py)."""
    _refuse_unsafe_production(
        extra_problems=["chuong serve --reload: a development option"] if reload else []
    )
    import uvicorn

    shared_metrics = _share_metrics_between_processes() if workers > 1 else None
    try:
        uvicorn.run(
            "cli.asgi:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            reload=reload,
            proxy_headers=False,  # forwarded headers are handled by api.client_ip with the trusted list
            server_header=False,
            access_log=False,
        )
    finally:
        if shared_metrics is not None:
            shutil.rmtree(shared_metrics, ignore_errors=True)


def _share_metrics_between_processes() -> Path | None:
    """Several API processes answer on one port, so GET /metrics must show all of them: each
    writes its metrics into a fresh directory (prometheus_client's multiprocess mode, read by
    api/routers/health.py), which the worker processes inherit. An operator's own
    PROMETHEUS_MULTIPROC_DIR is kept (and not removed)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    directory = Path(tempfile.mkdtemp(prefix="chuong-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return directory


@app.command()
def worker(
    queue: Annotated[str, typer.Option(help="high (urgent pushes, housekeeping) or bulk")] = "high",
    burst: Annotated[bool, typer.Option(help="Exit when the queue is empty")] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 0 if a worker of the queue is alive (container healthcheck)")
    ] = False,
    urgent_only: Annotated[
        bool,
        typer.Option(
            "--urgent-only",
            help="Only the queue's latency-critical work (first pages, the tracking sweep and sender, "
            "news releases), never a broadcast's batches; optional, beside the ordinary workers "
            "(docs/delivery.md 'The urgent worker')",
        ),
    ] = False,
) -> None:
    """Run a background worker (arq) on one queue."""
    from core.jobs import BULK_QUEUE, HIGH_QUEUE
    from workers.roles import urgent_health_key

    queues = {"high": HIGH_QUEUE, "bulk": BULK_QUEUE}
    if queue not in queues:
        raise typer.BadParameter("queue must be high or bulk")
    # The urgent worker's health record is its own: the other workers read it as its sign of life.
    health_key = urgent_health_key(queues[queue]) if urgent_only else None
    if check:
        # arq's own health record: each worker rewrites it every health_check_interval seconds
        # (workers/settings.py) with an expiry just past that, so it is gone once none is alive.
        from arq.worker import async_check_health

        from workers.queue import redis_settings

        raise typer.Exit(
            asyncio.run(async_check_health(redis_settings(), health_key, queue_name=queues[queue]))
        )
    _refuse_unsafe_production()
    from workers.arq_worker import PollingWorker, UrgentWorker, run_worker
    from workers.context import QUEUE_KEY, URGENT_KEY
    from workers.settings import UrgentWorkerSettings, WorkerSettings

    # The queue in arq's ctx: the worker's metrics say which queue it serves (chuong_worker_info).
    run_worker(
        UrgentWorkerSettings if urgent_only else WorkerSettings,
        worker_class=UrgentWorker if urgent_only else PollingWorker,
        burst=burst,
        queue_name=queues[queue],
        health_check_key=health_key,
        ctx={QUEUE_KEY: queue, URGENT_KEY: urgent_only},
    )


@admin_app.command("create")
def admin_create(
    username: Annotated[str, typer.Option(prompt=True)],
    full_name: Annotated[str, typer.Option(prompt=True)],
    unit_code: Annotated[str, typer.Option(help="Code of the root unit (created if missing)")] = "TW",
    unit_name: Annotated[str, typer.Option(help="Name of the root unit")] = "Trung ương",
    email: str | None = None,
    password_env: Annotated[
        str | None,
        typer.Option(help="Read the password from this environment variable instead of asking for it"),
    ] = None,
) -> None:
    """Create the first system admin. Asks for its password (twice; or reads it from the variable
    --password-env names), then prints a one-time TOTP enrolment URI: scan it, then confirm with a
    code at first sign-in (POST /v1/auth/mfa/enrol/confirm)."""
    if password_env:
        password = os.environ.get(password_env, "")
    else:
        password = getpass.getpass(f"Password for {username} (≥ 12 characters): ")
        if getpass.getpass("Repeat the password: ") != password:
            typer.echo("passwords differ", err=True)
            raise typer.Exit(2)
    from core.errors import ChuongError

    try:
        uri = asyncio.run(_create_admin(username, full_name, unit_code, unit_name, email, password))
    except ChuongError as exc:
        typer.echo(f"error: {exc.message} {exc.details or ''}", err=True)
        raise typer.Exit(1) from exc
    typer.echo("System admin created. Enrol TOTP now; this URI is shown only once:")
    typer.echo(uri)


async def _create_admin(
    username: str, full_name: str, unit_code: str, unit_name: str, email: str | None, password: str
) -> str:
    from sqlalchemy import select

    from auth.models import TotpCredential, Unit
    from auth.totp import new_secret, provisioning_uri
    from auth.units import create_root_unit
    from auth.users import bootstrap_system_admin
    from core.config import get_settings
    from core.crypto import encrypt_text
    from core.db import dispose_engine, transaction

    try:
        async with transaction() as session:
            unit = (await session.execute(select(Unit).where(Unit.code == unit_code))).scalar_one_or_none()
            if unit is None:
                unit = await create_root_unit(session, code=unit_code, name=unit_name, kind="central")
            user = await bootstrap_system_admin(
                session, unit=unit, username=username, full_name=full_name, password=password, email=email
            )
            secret = new_secret()
            # Unconfirmed until the admin proves the authenticator works with a first code.
            session.add(TotpCredential(user_id=user.id, secret_enc=encrypt_text(secret)))
        return provisioning_uri(secret, account=user.username, issuer=get_settings().totp_issuer)
    finally:
        await dispose_engine()


# The packages' own sub-commands, after the commands above (the order of `chuong --help`).
app.add_typer(audit_app, name="audit", help="Verify and checkpoint the tamper-evident audit log")
app.add_typer(backup_app, name="backup", help="Restore drills of the pgBackRest backups (D-42)")
app.add_typer(keys_app, name="keys", help="Rotate the field-encryption and JWT keys without downtime")
app.add_typer(devices_app, name="devices", help="See and purge floods of anonymous device registrations")
app.add_typer(demo_app, name="demo", help="Demo accounts and emulated devices (development)")
