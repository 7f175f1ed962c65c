"""The inbox read path over HTTP: `GET /v1/inbox/unread-count` and the first `GET /v1/inbox`
page, through the real API (uvicorn, cli.asgi), for a million anonymous portal readers.

    .venv/bin/python -m bench.inbox_http [--readers 1000000] [--broadcasts 1000] [--workers 2]
    .venv/bin/python -m bench.inbox_http --setup-only          # build the database, keep it
    .venv/bin/python -m bench.inbox_http --reuse --keep --rates 10,20,40

The database (`--database`, default chuong_bench_inbox_http) is dropped at the end unless
`--keep`; `--reuse` measures on a kept one (the device credentials' pepper is kept next to it
in the temporary directory).

Data: bench/inbox.py's `populate` (broadcasts in the 90-day window, a third to all readers and
the rest to one of five topics; per-recipient rows of targeted notifications over the readers),
plus one anonymous portal device per reader, registered 90 days ago with a device credential
and a topic, so every request authenticates like a real app (device credential → device row).

Load: closed loop — `wrk` (Debian's package; C, one thread) keeps `--connections` requests in
flight for `--duration` seconds, each request as a random reader; then an open loop — requests
at a fixed arrival rate from a small asyncio client in its own process, latency measured from
the moment each request was due (so queueing counts). Prints p50/p95/p99, throughput, and CPU
per request of the API workers, PostgreSQL and the load generator (from /proc).
`--profile DIR` samples one API worker with py-spy during the closed loop (not for the record).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import hmac
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg

from bench import profiling, support
from bench.inbox import populate, reader_id

ENDPOINTS = {"unread-count": "/v1/inbox/unread-count", "first page": "/v1/inbox?limit=20"}


def credential(index: int) -> str:
    # chd_<device id hex>_<secret>; the secret is derived from the index so the load generator
    # can build any reader's credential without a list of a million of them.
    return f"chd_{reader_id(index).hex}_b{index}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.inbox_http", description=__doc__.split("\n")[0])
    parser.add_argument("--readers", type=int, default=1_000_000)
    parser.add_argument("--broadcasts", type=int, default=1_000)
    parser.add_argument("--rows", type=int, default=1_000_000, help="per-recipient inbox rows")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--connections", type=int, default=200, help="closed loop: requests in flight")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per measurement")
    parser.add_argument(
        "--rates", default="auto", help="open loop req/s per endpoint; auto = 30 %% and 60 %% of closed"
    )
    parser.add_argument("--database", default="chuong_bench_inbox_http")
    parser.add_argument("--reuse", action="store_true", help="keep the database of an earlier run")
    parser.add_argument("--keep", action="store_true", help="do not drop the database at the end")
    parser.add_argument(
        "--setup-only", action="store_true", help="build the database (kept), measure nothing"
    )
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--app", default="cli.asgi:create_app", help="the ASGI app factory uvicorn serves")
    parser.add_argument("--profile", type=Path, default=None, help="directory for py-spy profiles")
    parser.add_argument("--open-loop-client", nargs=5, metavar=("PORT", "PATH", "RATE", "SECONDS", "READERS"))
    return parser.parse_args()


# --- data ----------------------------------------------------------------------------------


async def seed_devices(database: str, *, readers: int, pepper: str) -> None:
    """One live anonymous portal device per reader, id = reader_id(i), topic t(i % 5), registered
    90 days ago (so the whole broadcast window is theirs), with its credential's keyed hash."""
    conn = await asyncpg.connect(host="127.0.0.1", user="postgres", database=database)
    registered = dt.datetime.now(dt.UTC) - dt.timedelta(days=90)
    locales = ("vi", "vi", "vi", "en", "zh", "fr", "es", "ru")
    key = pepper.encode()
    try:
        chunk = 100_000
        for start in range(0, readers, chunk):
            records = [
                (
                    reader_id(i),
                    "portal",
                    "android",
                    "fcm",
                    f"bench-inbox-{i}",
                    locales[i % 8],
                    [f"t{i % 5}"],
                    hmac.new(key, credential(i).encode(), hashlib.sha256).hexdigest(),
                    registered,
                    registered,
                )
                for i in range(start, min(start + chunk, readers))
            ]
            await conn.copy_records_to_table(
                "devices",
                records=records,
                columns=[
                    "id",
                    "app",
                    "platform",
                    "provider",
                    "token",
                    "locale",
                    "topics",
                    "credential_hash",
                    "created_at",
                    "last_seen_at",
                ],
            )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


# --- processes and /proc -------------------------------------------------------------------


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == pid:
                    found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


def start_api(args: argparse.Namespace, env: dict[str, str]) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "uvicorn", args.app, "--factory", "--host", "127.0.0.1"]
    argv += [
        "--port",
        str(args.port),
        "--workers",
        str(args.workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
    ]
    argv += ["--no-access-log", "--log-level", "warning"]
    process = subprocess.Popen(argv, cwd=support.ROOT, env=env)  # noqa: S603
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{args.port}/healthz", timeout=1):
                if len(children(process.pid)) >= args.workers:
                    return process
        except OSError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError("the API did not start")


def backends(database: str) -> list[int]:
    """PostgreSQL backends connected to ``database`` (the machine is shared: other databases'
    work must not count). The API's pool is fixed, so they live through a measurement."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f" {database} ".encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
    return found


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += support.cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended during the measurement: its CPU is lost, not negative
    return total


class CpuMeter:
    """CPU seconds of the API workers, the benchmark database's PostgreSQL backends and the load
    generator over one measurement."""

    def __init__(self, api: subprocess.Popen[bytes]) -> None:
        self.workers = children(api.pid)
        self.backends = backends(os.environ["BENCH_DATABASE"])

    def read(self, client: int | None = None) -> dict[str, float]:
        figures = {"api": _cpu(self.workers), "postgres": _cpu(self.backends)}
        if client is not None:
            figures["client"] = support.cpu_seconds(client)
        return figures


# --- closed loop: wrk -----------------------------------------------------------------------

WRK_SCRIPT = """
local readers = %(readers)d
math.randomseed(os.time())
request = function()
  local i = math.random(0, readers - 1)
  return wrk.format("GET", "%(path)s", {["Authorization"] = string.format("Bearer chd_%%032x_b%%d", i, i)})
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"requests": %%d, "seconds": %%f, "errors": %%d, '
    .. '"p50": %%d, "p95": %%d, "p99": %%d, "max": %%d}\\n',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""


def closed_loop(
    args: argparse.Namespace, api: subprocess.Popen[bytes], path: str, seconds: float
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"readers": args.readers, "path": path})
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    argv = [wrk, "-t1", f"-c{args.connections}", f"-d{seconds:.0f}s", "--timeout", "10s", "-s", script.name]
    argv.append(f"http://127.0.0.1:{args.port}{path}")
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)  # noqa: S603
    output, figures = measured(api, process)
    line = next(line for line in output.splitlines() if line.startswith("WRK "))
    figures.update(json.loads(line[4:]))
    return figures


def measured(api: subprocess.Popen[bytes], client: subprocess.Popen[str]) -> tuple[str, dict[str, Any]]:
    """Wait for the load generator; CPU of the API workers, PostgreSQL and the generator."""
    meter = CpuMeter(api)
    before = meter.read(client.pid)
    client_cpu = before["client"]
    while client.poll() is None:
        try:
            client_cpu = support.cpu_seconds(client.pid)  # the last reading before it exits
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.1)
    output, _ = client.communicate()
    after = meter.read()
    after["client"] = client_cpu
    return output, {f"cpu_{name}": after[name] - before[name] for name in after}


# --- open loop: a light asyncio client in its own process ------------------------------------


async def _open_loop(port: int, path: str, rate: float, seconds: float, readers: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    latencies: list[float] = []
    errors = 0
    slots = asyncio.Semaphore(2000)

    async def exchange(
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes
    ) -> bytes:
        reader, writer = connection
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for header in head.split(b"\r\n"):
            if header.lower().startswith(b"content-length:"):
                length = int(header.split(b":", 1)[1])
        await reader.readexactly(length)
        return head

    async def one(due: float) -> None:
        nonlocal errors
        async with slots:
            index = random.randrange(readers)
            request = (
                f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {credential(index)}\r\n\r\n"
            )
            connection = idle.pop() if idle else await asyncio.open_connection("127.0.0.1", port)
            try:
                head = await exchange(connection, request.encode())
            except (asyncio.IncompleteReadError, ConnectionError):
                # The server closed an idle keep-alive connection: a new one, same request.
                connection[1].close()
                connection = await asyncio.open_connection("127.0.0.1", port)
                head = await exchange(connection, request.encode())
            latencies.append(loop.time() - due)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
            idle.append(connection)

    tasks = []
    start = loop.time() + 0.05
    for k in range(int(rate * seconds)):
        due = start + k / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e6

    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "errors": errors,
        "p50": pct(0.50),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "max": latencies[-1] * 1e6,
        "connections": len(idle),
    }


def open_loop(
    args: argparse.Namespace, api: subprocess.Popen[bytes], path: str, rate: float
) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.inbox_http", "--open-loop-client"]
    argv += [str(args.port), path, str(rate), str(args.duration), str(args.readers)]
    process = subprocess.Popen(argv, cwd=support.ROOT, stdout=subprocess.PIPE, text=True)  # noqa: S603
    output, figures = measured(api, process)
    figures.update(json.loads(output.strip().splitlines()[-1]))
    return figures


# --- the run ---------------------------------------------------------------------------------


def environment(args: argparse.Namespace) -> dict[str, str]:
    from cryptography.fernet import Fernet

    from tests.support.redis_db import claim_redis_database

    return os.environ | {
        "CHUONG_ENVIRONMENT": "bench",
        "CHUONG_DATABASE_URL": f"postgresql+asyncpg://{support.APP_ROLE}@127.0.0.1:5432/{args.database}",
        "CHUONG_REDIS_URL": claim_redis_database(),
        "CHUONG_FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "CHUONG_AUDIT_HMAC_KEY": secrets.token_urlsafe(32),
        "CHUONG_JWT_KEYS": json.dumps({"bench": secrets.token_urlsafe(32)}),
        "CHUONG_JWT_ACTIVE_KID": "bench",
        "CHUONG_TOKEN_PEPPER": args.pepper,
        # One load generator on 127.0.0.1 stands for a million phones: the limiter still runs
        # (its Redis round trips are part of every request) but never refuses.
        "CHUONG_RATE_LIMIT_PER_IP": "100000000/minute",
        "CHUONG_RATE_LIMIT_PER_CLIENT": "100000000/minute",
        "CHUONG_LOG_LEVEL": "WARNING",
        "CHUONG_LOG_JSON": "false",
        # A fixed pool per worker: with 200 requests in flight, overflow connections would be
        # opened and closed all the time (TLS probe, authentication, backend start each time).
        "CHUONG_DB_POOL_SIZE": "20",
        "CHUONG_DB_MAX_OVERFLOW": "0",
    }


def row(label: str, figures: dict[str, Any]) -> str:
    requests = max(1, figures["requests"])
    per = {name: figures[f"cpu_{name}"] * 1000 / requests for name in ("api", "postgres", "client")}
    return (
        f"| {label} | {figures['requests']:,} | {figures['requests'] / figures['seconds']:,.0f} | "
        f"{figures['p50'] / 1000:.1f} | {figures['p95'] / 1000:.1f} | {figures['p99'] / 1000:.1f} | "
        f"{per['api']:.2f} | {per['postgres']:.2f} | {per['client']:.2f} | {figures['errors']} | "
        f"{os.getloadavg()[0]:.1f} |"
    )


def main() -> None:
    args = parse_args()
    os.environ["BENCH_DATABASE"] = args.database
    if args.open_loop_client:
        port, path, rate, seconds, readers = args.open_loop_client
        import uvloop

        figures = uvloop.run(_open_loop(int(port), path, float(rate), float(seconds), int(readers)))
        print(json.dumps(figures))
        return
    pepper_file = Path(tempfile.gettempdir()) / f"{args.database}.pepper"
    if args.reuse and pepper_file.exists():
        args.pepper = pepper_file.read_text().strip()
    else:
        args.pepper = secrets.token_urlsafe(32)
        asyncio.run(
            support.recreate_database(host="127.0.0.1", port=5432, superuser="postgres", name=args.database)
        )
        support.migrate(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{args.database}")
        started = time.perf_counter()
        asyncio.run(populate(args.database, rows=args.rows, readers=args.readers, broadcasts=args.broadcasts))
        asyncio.run(seed_devices(args.database, readers=args.readers, pepper=args.pepper))
        pepper_file.write_text(args.pepper)
        print(
            f"{args.readers:,} readers (devices), {args.broadcasts:,} broadcasts, {args.rows:,} inbox rows "
            f"in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    if args.setup_only:
        return
    api = start_api(args, environment(args))
    print(f"API: uvicorn, {args.workers} workers, pids {children(api.pid)}", flush=True)
    header = (
        "| run | requests | req/s | p50 ms | p95 ms | p99 ms | API CPU ms/req | PostgreSQL CPU ms/req "
        "| client CPU ms/req | errors | load avg |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = []
    try:
        for label, path in ENDPOINTS.items():
            closed_loop(args, api, path, 5)  # warm-up: connections, caches, plans
            profiler = None
            if args.profile is not None:
                args.profile.mkdir(parents=True, exist_ok=True)
                output = args.profile / f"api-{label.replace(' ', '-')}.txt"
                profiler = profiling.start(children(api.pid)[0], output)
            closed = closed_loop(args, api, path, args.duration)
            if profiler is not None:
                profiling.stop(profiler)
                print(profiling.summarize(output), flush=True)
            lines.append(row(f"{label}, closed loop {args.connections}", closed))
            print(lines[-1], flush=True)
            throughput = closed["requests"] / closed["seconds"]
            rates = (
                [round(throughput * share, -1) or 10.0 for share in (0.3, 0.6)]
                if args.rates == "auto"
                else [float(r) for r in args.rates.split(",")]
            )
            for rate in rates:
                lines.append(row(f"{label}, open loop {rate:,.0f}/s", open_loop(args, api, path, rate)))
                print(lines[-1], flush=True)
    finally:
        api.send_signal(signal.SIGINT)
        try:
            api.wait(timeout=30)
        except subprocess.TimeoutExpired:
            api.kill()
        if not args.keep:
            asyncio.run(_drop(args.database))
            pepper_file.unlink(missing_ok=True)
    print("\n" + header + "\n" + "\n".join(lines))


async def _drop(database: str) -> None:
    conn = await asyncpg.connect(host="127.0.0.1", user="postgres", database="postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
