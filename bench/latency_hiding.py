"""Latency hiding: one push to N devices through the whole pipeline at 0 ms and at an added
provider latency, alternating, with the raw client measured next to each phase.

    .venv/bin/python -m bench.latency_hiding [--devices 40000] [--workers 1] [--latencies 0,40]
        [--rounds 2] [--providers fcm,apns] [--database chuong_bench_latency]

The emulator's added latency (its control API, ``PUT /faults {"latency_ms": ...}``) stands in for
the round trip to Google's and Apple's front ends. Per round, per latency, per provider: the raw
client (the provider class alone, batches of 500 one after another, bench/baseline.py) and then
a broadcast with only that provider's devices live (bench/delivery.py's phase). Prints per row
msg/s and CPU ms per message; then per provider the pipeline's rate at each latency ÷ its rate at
the first latency, and worker CPU ÷ raw CPU per delivery. ``--profile DIR`` samples the workers
with py-spy (figures from a profiled run are not for the record).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

from bench import support
from bench.baseline import Figures, raw_baseline
from bench.delivery import configure_environment, pipeline_phase, send_notification, sign_in_as_system_admin


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.latency_hiding", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--devices", type=int, default=40_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--transport", choices=["http1", "firebase_admin"], default="http1")
    parser.add_argument("--fcm-share", type=float, default=0.7)
    parser.add_argument("--latencies", default="0,40", help="comma-separated, ms added by the emulator")
    parser.add_argument("--rounds", type=int, default=2, help="each latency this many times, alternating")
    parser.add_argument("--providers", default="fcm,apns")
    parser.add_argument("--raw-messages", type=int, default=10_000, help="per raw row")
    parser.add_argument("--database", default="chuong_bench_latency")
    parser.add_argument("--pg", default="127.0.0.1:5432", help="host:port, trust authentication")
    parser.add_argument("--pg-superuser", default="postgres")
    parser.add_argument("--redis-url", default=None, help="default: a leased logical database")
    parser.add_argument("--phase-timeout", type=float, default=3600, help="seconds")
    parser.add_argument("--profile", type=Path, default=None, help="directory for py-spy profiles")
    parser.add_argument("--worker-env", action="append", default=[], help="NAME=VALUE for the workers")
    return parser.parse_args()


async def set_latency(control_url: str, latency_ms: float) -> None:
    async with httpx.AsyncClient() as client:
        answer = await client.put(f"{control_url}/faults", json={"latency_ms": latency_ms})
        answer.raise_for_status()


async def wait_for_idle(workers: list[int]) -> None:
    previous = [support.cpu_seconds(pid) for pid in workers]
    for _ in range(120):
        await asyncio.sleep(0.5)
        current = [support.cpu_seconds(pid) for pid in workers]
        if all(now - then < 0.05 for now, then in zip(current, previous, strict=True)):
            return
        previous = current


Row = tuple[int, float, str, Figures, Figures]  # round, latency, provider, raw, pipeline


async def run(args: argparse.Namespace, emulator: support.EmulatorProcess) -> list[Row]:
    conn = await support.fresh_database(
        pg=args.pg, superuser=args.pg_superuser, name=args.database, redis_url=args.redis_url
    )
    control_url = str(emulator.addresses["control_url"])
    latencies = [float(ms) for ms in args.latencies.split(",")]
    providers = [name for name in args.providers.split(",") if name]
    workers: list[Any] = []
    rows: list[Row] = []
    try:
        counts = await support.insert_devices(conn, devices=args.devices, fcm_share=args.fcm_share)
        print(f"registered {counts}", flush=True)
        principal = await sign_in_as_system_admin()
        extra = dict(item.split("=", 1) for item in args.worker_env)
        workers = support.start_workers(args.workers, {**os.environ, **extra})
        pids = [worker.pid for worker in workers]
        warm = await conn.fetch(
            "(SELECT id FROM devices WHERE provider = 'fcm' LIMIT 100)"
            " UNION ALL (SELECT id FROM devices WHERE provider = 'apns' LIMIT 100)"
        )
        warm_id = await send_notification(principal, {"devices": [str(row["id"]) for row in warm]})
        await support.wait_until_completed(conn, warm_id, timeout_seconds=120)
        for round_number in range(1, args.rounds + 1):
            for latency in latencies:
                await set_latency(control_url, latency)
                for name in providers:
                    raw = await raw_baseline(
                        name, min(args.raw_messages, counts[name]), processes=1, emulator_pid=emulator.pid
                    )
                    await support.keep_live_only(conn, name)
                    await wait_for_idle(pids)
                    label = f"{name}-{latency:g}ms-r{round_number}"
                    figures = await pipeline_phase(label, conn, principal, pids, emulator.pid, args)
                    rows.append((round_number, latency, name, raw, figures))
                    print(
                        f"round {round_number} {latency:g} ms {name}: raw {raw.rate:,.0f}/s "
                        f"{raw.ms(raw.client_cpu):.3f} ms; pipeline {figures.rate:,.0f}/s "
                        f"{figures.ms(figures.client_cpu):.3f} ms",
                        flush=True,
                    )
    finally:
        support.stop(workers)
        await conn.close()
    return rows


def report(args: argparse.Namespace, rows: list[Row]) -> None:
    print(f"\n## {args.devices:,} devices, {args.workers} worker(s), load average {os.getloadavg()}")
    print(
        "| round | latency ms | provider | raw msg/s | raw CPU ms/msg | pipeline msg/s | worker CPU ms/msg |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|")
    for round_number, latency, name, raw, pipe in rows:
        print(
            f"| {round_number} | {latency:g} | {name} | {raw.rate:,.0f} | {raw.ms(raw.client_cpu):.3f} "
            f"| {pipe.rate:,.0f} | {pipe.ms(pipe.client_cpu):.3f} |"
        )
    first: dict[tuple[int, str], float] = {}
    ratios: dict[tuple[str, float], list[float]] = defaultdict(list)
    cpu: dict[str, list[float]] = defaultdict(list)
    for round_number, latency, name, raw, pipe in rows:
        first.setdefault((round_number, name), pipe.rate)
        ratios[(name, latency)].append(pipe.rate / first[(round_number, name)])
        cpu[name].append(pipe.ms(pipe.client_cpu) / raw.ms(raw.client_cpu))
    print()
    for (name, latency), values in sorted(ratios.items()):
        print(f"{name} at {latency:g} ms ÷ first latency: {', '.join(f'{v:.2f}' for v in values)}")
    for name, values in sorted(cpu.items()):
        print(f"{name} worker CPU ÷ raw CPU per delivery: {', '.join(f'{v:.2f}' for v in values)}")


def main() -> None:
    args = parse_args()
    host, port = args.pg.split(":")
    configure_environment(args, host, int(port))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    emulator = support.EmulatorProcess.start(Path(tempfile.mkdtemp(prefix="chuong-bench-")) / "ca.pem")
    os.environ.update(emulator.env())
    started = time.perf_counter()
    try:
        rows = asyncio.run(run(args, emulator))
    finally:
        support.stop([emulator.process])
    report(args, rows)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
