"""The read surge after a breaking push, over HTTP: `GET /v1/inbox/unread-count`, the first
`GET /v1/inbox` page and device registration (`POST /v1/devices`, new and refresh), through the
real API (uvicorn, cli.asgi), for a million anonymous portal readers — each measured side by side
with a minimal endpoint (bench/minimal_app.py: FastAPI, the same uvicorn settings, one asyncpg
query), the yardstick for the API's CPU per request.

    .venv/bin/python -m bench.inbox_http [--readers 1000000] [--broadcasts 1000] [--workers 2]
    .venv/bin/python -m bench.inbox_http --setup-only          # build the database, keep it
    .venv/bin/python -m bench.inbox_http --reuse --keep
    .venv/bin/python -m bench.inbox_http --reuse --keep --capacity minimal=400,unread-count=300

The database (`--database`, default chuong_bench_inbox_http) is dropped at the end unless
`--keep`; `--reuse` measures on a kept one (the device credentials' pepper is kept next to it
in the temporary directory).

Data: bench/inbox.py's `populate` (broadcasts in the 90-day window, a third to all readers and
the rest to one of five topics; per-recipient rows of targeted notifications over the readers),
plus one anonymous portal device per reader, registered 90 days ago with a device credential
(already used, as an installed app's is) and a topic, so every request authenticates like a real
app (device credential → device row). "register new" adds devices to the database.

Load (bench/http_load.py): an open loop — requests at a fixed arrival rate from a small asyncio
client in its own process, latency measured from the moment each request was due (so queueing
counts). Per scenario: a capacity search (rates ×1.4 from `--start-rate` until p99 passes
250 ms, an error or a backlog, then two bisections), then a run of `--duration` seconds at
`--share` (80 %) of that capacity, reporting p50/p95/p99 and the CPU per request of the API
workers, PostgreSQL (the benchmark database's backends) and the load generator (from /proc).
Each API scenario's run is followed by the minimal endpoint at the same rate and length, and
"× minimal" is the API's CPU per request over that paired run's (the machine is shared: what
else runs drifts). `--capacity name=rate,...` skips the search for those scenarios. `--closed-loop` also runs
`wrk` (Debian's package) with `--connections` requests in flight.
`--profile DIR` samples the busiest API worker with py-spy during each run at 80 %.
bench/surge_pairs.py compares two trees' APIs and the minimal endpoint run for run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import hmac
import json
import os
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

from bench import http_load, profiling, support
from bench.http_load import LOCALES, SCENARIOS, Scenario, credential, seeded_token
from bench.inbox import populate, reader_id


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.inbox_http", description=__doc__.split("\n")[0])
    parser.add_argument("--readers", type=int, default=1_000_000)
    parser.add_argument("--broadcasts", type=int, default=1_000)
    parser.add_argument("--rows", type=int, default=1_000_000, help="per-recipient inbox rows")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--connections", type=int, default=200, help="closed loop: requests in flight")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of the recorded run")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated, in order")
    parser.add_argument("--capacity", default="", help="name=req/s,...: skip those capacity searches")
    parser.add_argument("--start-rate", type=float, default=50.0, help="first rate of a capacity search")
    parser.add_argument("--probe-seconds", type=float, default=8.0, help="seconds per capacity probe")
    parser.add_argument("--share", type=float, default=0.8, help="of capacity, for the recorded run")
    parser.add_argument("--closed-loop", action="store_true", help="also a closed loop with wrk")
    parser.add_argument("--database", default="chuong_bench_inbox_http")
    parser.add_argument("--reuse", action="store_true", help="keep the database of an earlier run")
    parser.add_argument("--keep", action="store_true", help="do not drop the database at the end")
    parser.add_argument(
        "--setup-only", action="store_true", help="build the database (kept), measure nothing"
    )
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--app", default="cli.asgi:create_app", help="the ASGI app factory uvicorn serves")
    parser.add_argument("--profile", type=Path, default=None, help="directory for py-spy profiles")
    parser.add_argument(
        "--open-loop-client", nargs=5, metavar=("PORT", "SCENARIO", "RATE", "SECONDS", "READERS")
    )
    return parser.parse_args()


# --- data ----------------------------------------------------------------------------------


async def seed_devices(database: str, *, readers: int, pepper: str) -> None:
    """One live anonymous portal device per reader, id = reader_id(i), topic t(i % 5), registered
    90 days ago (so the whole broadcast window is theirs), with its credential's keyed hash, which
    it has used (an installed app's first request recorded that long ago)."""
    conn = await asyncpg.connect(host="127.0.0.1", user="postgres", database=database)
    registered = dt.datetime.now(dt.UTC) - dt.timedelta(days=90)
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
                    seeded_token(i),
                    LOCALES[i % 8],
                    [f"t{i % 5}"],
                    hmac.new(key, credential(i).encode(), hashlib.sha256).hexdigest(),
                    registered,
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
                    "credential_used_at",
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


def start_api(
    args: argparse.Namespace, env: dict[str, str], *, app: str | None = None, port: int | None = None
) -> subprocess.Popen[bytes]:
    """uvicorn serving ``app`` (default ``--app``); the minimal endpoint gets the same settings."""
    port = port or args.port
    argv = [sys.executable, "-m", "uvicorn", app or args.app, "--factory", "--host", "127.0.0.1"]
    argv += [
        "--port",
        str(port),
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
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
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
    args: argparse.Namespace, api: subprocess.Popen[bytes], scenario: Scenario, seconds: float
) -> dict[str, Any]:
    path = scenario.path
    port = args.port + 1 if scenario.server == "minimal" else args.port
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"readers": args.readers, "path": path})
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    argv = [wrk, "-t1", f"-c{args.connections}", f"-d{seconds:.0f}s", "--timeout", "10s", "-s", script.name]
    argv.append(f"http://127.0.0.1:{port}{path}")
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


# --- open loop: bench/http_load.py, in its own process ----------------------------------------


def open_loop(
    args: argparse.Namespace, server: subprocess.Popen[bytes], scenario: Scenario, rate: float, seconds: float
) -> dict[str, Any]:
    port = args.port + 1 if scenario.server == "minimal" else args.port
    argv = [sys.executable, "-m", "bench.inbox_http", "--open-loop-client"]
    argv += [str(port), scenario.name, str(rate), str(seconds), str(args.readers)]
    process = subprocess.Popen(argv, cwd=support.ROOT, stdout=subprocess.PIPE, text=True)  # noqa: S603
    output, figures = measured(server, process)
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
        "CHUONG_DEVICE_REGISTRATION_LIMIT_PER_NETWORK": "100000000/minute",
        "CHUONG_DEVICE_REGISTRATION_LIMIT_GLOBAL": "100000000/minute",
        "CHUONG_LOG_LEVEL": "WARNING",
        "CHUONG_LOG_JSON": "false",
        # A fixed pool per worker: overflow connections would be opened and closed all the time
        # (TLS probe, authentication, backend start each time). 8 each: the shared PostgreSQL
        # allows 100 connections for every session on the machine, and at the few hundred
        # requests a second two cores serve, 8 are rarely all busy.
        "CHUONG_DB_POOL_SIZE": "8",
        "CHUONG_DB_MAX_OVERFLOW": "0",
    }


HEADER = (
    "| scenario | capacity req/s | run req/s | requests | p50 ms | p95 ms | p99 ms | API CPU ms/req "
    "| × minimal | PostgreSQL CPU ms/req | client CPU ms/req | errors | load avg |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def row(label: str, capacity: float, figures: dict[str, Any], minimal_cpu: float | None) -> str:
    requests = max(1, figures["requests"])
    per = {name: figures[f"cpu_{name}"] * 1000 / requests for name in ("api", "postgres", "client")}
    ratio = f"{per['api'] / minimal_cpu:.2f}" if minimal_cpu else "–"
    return (
        f"| {label} | {capacity:,.0f} | {figures['requests'] / figures['seconds']:,.0f} | "
        f"{figures['requests']:,} | {figures['p50'] / 1000:.1f} | {figures['p95'] / 1000:.1f} | "
        f"{figures['p99'] / 1000:.1f} | {per['api']:.2f} | {ratio} | {per['postgres']:.2f} | "
        f"{per['client']:.2f} | {figures['errors']} | {os.getloadavg()[0]:.1f} |"
    )


def measure(
    args: argparse.Namespace, servers: dict[str, subprocess.Popen[bytes]], scenario: Scenario
) -> tuple[float, dict[str, Any]]:
    """Warm up, find the capacity (or take ``--capacity``'s), then the recorded run at ``--share``
    of it. Returns the capacity and the run's figures."""
    server = servers[scenario.server]
    given = dict(item.split("=") for item in args.capacity.split(",") if item)
    open_loop(args, server, scenario, min(args.start_rate, 50.0), 3)  # connections, caches, plans
    if scenario.name in given:
        capacity = float(given[scenario.name])
    else:
        print(f"{scenario.name}: capacity search", flush=True)
        capacity = http_load.search_capacity(
            lambda rate: open_loop(args, server, scenario, rate, args.probe_seconds),
            start=args.start_rate,
            seconds=args.probe_seconds,
            report=lambda line: print(line, flush=True),
        )
    rate = max(1.0, round(capacity * args.share))
    profiler = None
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        output = args.profile / f"{scenario.server}-{scenario.name.replace(' ', '-')}.txt"
        profiler = profiling.start(max(children(server.pid), key=support.cpu_seconds), output)
    figures = open_loop(args, server, scenario, rate, args.duration)
    if profiler is not None:
        profiling.stop(profiler)
        print(profiling.summarize(output), flush=True)
    return capacity, figures


def main() -> None:
    args = parse_args()
    os.environ["BENCH_DATABASE"] = args.database
    if args.open_loop_client:
        port, name, rate, seconds, readers = args.open_loop_client
        import uvloop

        figures = uvloop.run(
            http_load.open_loop(int(port), SCENARIOS[name], float(rate), float(seconds), int(readers))
        )
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
    env = environment(args)
    servers = {"api": start_api(args, env)}
    lines: list[str] = []
    try:
        servers["minimal"] = start_api(args, env, app="bench.minimal_app:create_app", port=args.port + 1)
        print(f"API: uvicorn, {args.workers} workers, pids {children(servers['api'].pid)}", flush=True)
        minimal_cpu: float | None = None
        for name in args.scenarios.split(","):
            scenario = SCENARIOS[name]
            capacity, figures = measure(args, servers, scenario)
            if scenario.server == "api":
                # The yardstick right after, at the same rate and length: the machine is shared,
                # and what others run drifts from minute to minute.
                rate = figures["requests"] / args.duration
                paired = open_loop(args, servers["minimal"], SCENARIOS["minimal"], rate, args.duration)
                minimal_cpu = paired["cpu_api"] * 1000 / max(1, paired["requests"])
                lines.append(row(f"minimal, at {name}'s rate", 0, paired, minimal_cpu))
            else:
                minimal_cpu = figures["cpu_api"] * 1000 / max(1, figures["requests"])
            lines.append(row(f"{name}, open loop {args.share:.0%}", capacity, figures, minimal_cpu))
            print(lines[-1], flush=True)
            if args.closed_loop and scenario.method == "GET":
                closed = closed_loop(args, servers[scenario.server], scenario, args.duration)
                lines.append(row(f"{name}, closed loop {args.connections}", 0, closed, minimal_cpu))
                print(lines[-1], flush=True)
    finally:
        for server in servers.values():
            server.send_signal(signal.SIGINT)
        for server in servers.values():
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        if not args.keep:
            asyncio.run(_drop(args.database))
            pepper_file.unlink(missing_ok=True)
    print("\n" + HEADER + "\n" + "\n".join(lines))


async def _drop(database: str) -> None:
    conn = await asyncpg.connect(host="127.0.0.1", user="postgres", database="postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
