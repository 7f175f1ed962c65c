"""Breaking-news benchmark: approve → first provider request, and an optional big push.

    .venv/bin/python -m bench.news [--runs 20] [--devices 200] [--workers 1]
    .venv/bin/python -m bench.news --big 1000000 --workers 2     # the 1M end-to-end

Latency mode: N live portal devices (70 % FCM / 30 % APNs) in a fresh database
(`chuong_bench_news`), real `chuong worker --queue high` processes and an emulator process that
records every message. Each run, a reporter's draft is submitted and another user approves it through
the news workflow (the service layer the API calls; HTTP and the TOTP check are not timed);
the clock starts just before the approval transaction and stops at the earliest emulator
record (received_at) of that push. Prints p50 / p95 / max over the runs.

Big mode: one breaking-news item to every device, total time and deliveries/s, with the raw
provider baseline measured in the same run (bench.baseline) and the pipeline ÷ raw ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench import support
from bench.baseline import raw_baseline
from bench.delivery import configure_environment, sign_in_as_system_admin, wait_for_idle


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.news", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="approvals timed (after one warm-up)")
    parser.add_argument("--devices", type=int, default=200, help="devices for the latency runs")
    parser.add_argument(
        "--big", type=int, default=0, help="instead of the latency runs: one push to this many devices"
    )
    parser.add_argument("--workers", type=int, default=1, help="`chuong worker` processes")
    parser.add_argument(
        "--via",
        choices=["http", "service"],
        default="http",
        help="http: reporter and publisher sign in (password + TOTP) and act through `chuong serve`; "
        "service: call the news workflow in this process",
    )
    parser.add_argument("--transport", choices=["http1", "firebase_admin"], default="http1")
    parser.add_argument("--fcm-share", type=float, default=0.7)
    parser.add_argument("--raw-messages", type=int, default=30_000, help="the big mode baseline (the mix)")
    parser.add_argument("--database", default="chuong_bench_news")
    parser.add_argument("--pg", default="127.0.0.1:5432", help="host:port, trust authentication")
    parser.add_argument("--pg-superuser", default="postgres")
    parser.add_argument("--redis-url", default=None, help="default: a leased logical database")
    return parser.parse_args()


def start_recording_emulator(ca_path: Path) -> support.EmulatorProcess:
    """Like support.EmulatorProcess.start, but keeping the per-message record: its received_at
    is the measurement."""
    argv = [sys.executable, "-m", "emulator", "--fcm-port=0", "--apns-port=0", "--control-port=0"]
    argv += [f"--ca-path={ca_path}"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=support.ROOT)  # noqa: S603
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if not line.startswith("EMULATOR READY "):
        process.kill()
        raise RuntimeError(f"emulator did not start: {line!r}")
    return support.EmulatorProcess(process, json.loads(line[len("EMULATOR READY ") :]))


async def make_author(approver: Any) -> Any:
    """A reporter in the approver's unit: four eyes need two people."""
    from auth.models import User
    from auth.principal import Principal
    from auth.roles import Role, permissions_of
    from core.db import transaction

    async with transaction() as session:
        user = User(
            id=uuid.uuid4(),
            username=f"reporter{uuid.uuid4().hex[:6]}",
            full_name="Phóng viên",
            unit_id=approver.unit_id,
            role=Role.REPORTER.value,
            password_hash="!",  # noqa: S106 (never signs in: the benchmark uses the service layer)
            is_active=True,
        )
        session.add(user)
    return Principal(
        permissions=permissions_of(Role.REPORTER),
        unit_id=approver.unit_id,
        unit_path=approver.unit_path,
        user=user,
        actor=user,
    )


def draft_body(index: int) -> dict[str, Any]:
    return {
        "article_id": f"bench-{index}",
        "deep_link": f"chuong-portal://article/bench-{index}",
        "title": {"vi": "Tin đặc biệt quan trọng", "en": "Breaking news", "ru": "Срочная новость"},
        "body": {"vi": "Nội dung bản tin", "en": "Story body", "ru": "Текст новости"},
        "audience": {"all_readers": True},
    }


async def submitted_item(author: Any, index: int) -> uuid.UUID:
    from core.after_commit import committing
    from news import service, workflow
    from news.schemas import NewsDraft

    body = NewsDraft.model_validate(draft_body(index))
    async with committing() as session:
        item = await service.create_draft(session, principal=author, body=body)
        await workflow.submit(session, principal=author, item_id=item.id, reason=None)
        return item.id


async def approve(approver: Any, item_id: uuid.UUID) -> str:
    import dataclasses

    from auth.models import AuthSession
    from core.after_commit import committing
    from core.db import utcnow
    from news import workflow

    # The approval needs a step-up verified in the last minutes (auth/step_up.py): the service
    # layer is driven directly here, so the publisher's session is one that has just verified.
    verified = dataclasses.replace(approver, session=AuthSession(mfa_verified_at=utcnow()))
    async with committing() as session:
        item = await workflow.approve(session, principal=verified, item_id=item_id, send_at=None, reason=None)
        return str(item.notification_id)


class HttpDesk:
    """A reporter and a publisher with confirmed TOTP, signed in to a `chuong serve` process:
    the approval goes through the real API (auth, step-up check, commit, enqueue)."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self.http, self.base_url = http, base_url
        self.headers: dict[str, dict[str, str]] = {}

    async def sign_in(self) -> None:
        from auth.models import TotpCredential, User
        from auth.passwords import hash_password
        from auth.roles import Role
        from auth.totp import code_for, new_secret
        from auth.units import create_root_unit
        from core.clock import utcnow
        from core.crypto import encrypt_text
        from core.db import transaction

        password = secrets.token_urlsafe(18)
        secrets_by_user: dict[str, str] = {}
        async with transaction() as session:
            unit = await create_root_unit(session, code="NEWSBENCH", name="Ban Biên tập", kind="central")
            for role in (Role.REPORTER, Role.PUBLISHER):
                user = User(
                    id=uuid.uuid4(),
                    username=f"{role.value}bench",
                    full_name=f"Bench {role.value}",
                    unit_id=unit.id,
                    role=role.value,
                    password_hash=hash_password(password),
                    is_active=True,
                    must_change_password=False,
                )
                session.add(user)
                await session.flush()
                secret = new_secret()
                session.add(
                    TotpCredential(user_id=user.id, secret_enc=encrypt_text(secret), confirmed_at=utcnow())
                )
                secrets_by_user[role.value] = secret
        for name, secret in secrets_by_user.items():
            body = {
                "username": f"{name}bench",
                "password": password,
                "totp_code": code_for(secret, at=utcnow()),
            }
            answer = await self.post("/v1/auth/login", body, role=None)
            self.headers[name] = {"Authorization": f"Bearer {answer['access_token']}"}

    async def post(self, path: str, body: dict[str, Any], *, role: str | None) -> dict[str, Any]:
        headers = self.headers[role] if role else {}
        async with self.http.post(self.base_url + path, json=body, headers=headers) as response:
            answer: dict[str, Any] = await response.json()
            if response.status >= 300:
                raise RuntimeError(f"POST {path}: {response.status} {answer}")
            return answer

    async def submitted_item(self, index: int) -> str:
        item = await self.post("/v1/news", draft_body(index), role="reporter")
        await self.post(f"/v1/news/{item['id']}/submit", {}, role="reporter")
        return str(item["id"])

    async def approve(self, item_id: str) -> str:
        item = await self.post(f"/v1/news/{item_id}/approve", {}, role="publisher")
        return str(item["notification_id"])


def start_api(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, "-m", "cli", "serve", "--port", str(port)]
    return subprocess.Popen(argv, cwd=support.ROOT, env=env), f"http://127.0.0.1:{port}"  # noqa: S603


async def wait_for_api(http: aiohttp.ClientSession, base_url: str) -> None:
    for _ in range(300):
        try:
            async with http.get(f"{base_url}/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the API did not start")


async def first_request_at(
    http: aiohttp.ClientSession, control: str, notification_id: str, limit: int
) -> float:
    async with http.get(f"{control}/messages", params={"limit": str(limit)}) as response:
        messages = (await response.json())["messages"]
    times = []
    for message in messages:
        payload = message["payload"] or {}
        data = payload.get("message", {}).get("data", {}) if "message" in payload else payload
        if data.get("notification_id") == notification_id:
            times.append(message["received_at"])
    if not times:
        raise RuntimeError(f"no emulator record for {notification_id}")
    return float(min(times))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def latency_runs(
    args: argparse.Namespace, conn: asyncpg.Connection, control: str, api_url: str | None
) -> None:
    latencies: list[float] = []
    commits: list[float] = []
    totals: list[float] = []
    async with aiohttp.ClientSession() as http:
        if api_url is not None:
            await wait_for_api(http, api_url)
            desk = HttpDesk(http, api_url)
            await desk.sign_in()
        else:
            approver = await sign_in_as_system_admin()
            author = await make_author(approver)
        for index in range(args.runs + 1):
            await http.delete(f"{control}/messages")
            if api_url is not None:
                item_id: Any = await desk.submitted_item(index)
                started = time.time()
                notification_id = await desk.approve(item_id)
            else:
                item_id = await submitted_item(author, index)
                started = time.time()
                notification_id = await approve(approver, item_id)
            committed = time.time()
            final = await support.wait_until_completed(conn, notification_id, timeout_seconds=120)
            total = time.time() - started
            first = await first_request_at(http, control, notification_id, limit=final["targeted"] + 10)
            if index == 0:
                continue  # warm-up: connections, provider clients, query plans
            latencies.append((first - started) * 1000)
            commits.append((committed - started) * 1000)
            totals.append(total * 1000)
    print(
        f"approve ({args.via}) → first provider request over {len(latencies)} runs, {args.devices} devices:"
    )
    print(
        f"  p50 {statistics.median(latencies):.0f} ms  p95 {percentile(latencies, 0.95):.0f} ms  "
        f"min {min(latencies):.0f} ms  max {max(latencies):.0f} ms"
    )
    print(f"  of which the approval call (request, commit, enqueue): p50 {statistics.median(commits):.0f} ms")
    print(f"  approve → all {args.devices} sent: p50 {statistics.median(totals):.0f} ms")
    print(f"  load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


async def big_push(
    args: argparse.Namespace, conn: asyncpg.Connection, emulator: support.EmulatorProcess
) -> None:
    counts = {
        row["provider"]: row["n"]
        for row in await conn.fetch("SELECT provider, count(*) AS n FROM devices GROUP BY provider")
    }
    approver = await sign_in_as_system_admin()
    author = await make_author(approver)
    item_id = await submitted_item(author, 10_000)
    started = time.perf_counter()
    notification_id = await approve(approver, item_id)
    final = await support.wait_until_completed(conn, notification_id, timeout_seconds=3600)
    seconds = time.perf_counter() - started
    print(f"big push: {final} in {seconds:.1f} s = {final['sent'] / seconds:,.0f} deliveries/s")
    # The mix, measured: as many raw processes as workers, paced, the same devices (bench/baseline.py).
    raw = await raw_baseline(
        "all",
        min(args.raw_messages, sum(counts.values())),
        processes=args.workers,
        emulator_pid=emulator.pid,
        fcm_share=args.fcm_share,
    )
    rate = final["sent"] / seconds
    print(f"raw baseline (the mix, {args.workers} process(es)): {raw.rate:,.0f}/s")
    print(f"pipeline ÷ raw (same devices, same emulator): {rate / raw.rate:.2f}")


async def run(args: argparse.Namespace, emulator: support.EmulatorProcess) -> None:
    conn = await support.fresh_database(
        pg=args.pg, superuser=args.pg_superuser, name=args.database, redis_url=args.redis_url
    )
    workers: list[Any] = []
    try:
        devices = args.big or args.devices
        counts = await support.insert_devices(conn, devices=devices, fcm_share=args.fcm_share)
        print(f"registered {counts}", flush=True)
        workers = support.start_workers(args.workers, dict(os.environ))
        api_url = None
        if args.via == "http" and not args.big:
            api, api_url = start_api(dict(os.environ))
            workers.append(api)
        await wait_for_idle([worker.pid for worker in workers])
        control = str(emulator.addresses["control_url"])
        if args.big:
            await big_push(args, conn, emulator)
        else:
            await latency_runs(args, conn, control, api_url)
    finally:
        support.stop(workers)
        await conn.close()


def main() -> None:
    args = parse_args()
    host, port = args.pg.split(":")
    configure_environment(args, host, int(port))
    ca_path = Path(tempfile.mkdtemp(prefix="chuong-bench-")) / "ca.pem"
    # The big push needs no per-message record (it would cost the emulator memory and CPU).
    emulator = support.EmulatorProcess.start(ca_path) if args.big else start_recording_emulator(ca_path)
    os.environ.update(emulator.env())
    try:
        asyncio.run(run(args, emulator))
    finally:
        support.stop([emulator.process])


if __name__ == "__main__":
    main()
