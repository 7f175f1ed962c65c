"""Soak: mixed load with faults injected at random, then the delivery invariants (issue 18).

    .venv/bin/python -m bench.soak --minutes 30 --seed 18

Runs its own service: a scratch PostgreSQL cluster and a scratch Redis on spare ports (the faults
restart them; the machine's shared ones are never touched), the provider emulator (every answer
`--latency-ms` late, every message recorded), `chuong serve`, `--workers` `chuong worker --queue
high` processes and one bulk worker. Load through the API (bench/soak_load.py): breaking news
through the four-eyes workflow, targeted pushes, inbox reads, sign-ins with TOTP, device
registrations and refreshes, at Poisson arrivals. Faults one at a time at seeded random gaps
(bench/soak_faults.py): a worker SIGKILLed (and restarted), Redis restarted empty, PostgreSQL
stopped at once and started, a provider outage (503), a 429 storm, a latency spike, dropped and
reset provider connections; after each, the time until the API answers and every notification
created before the fault ended is finished.

At the end the load stops, everything drains, and per notification (bench/soak_checks.py): lost
deliveries (must be 0), duplicates against the bound of the faults under way while it was sent,
batches left open (0), counters against rows; the HTTP operations' error rates and p50/p99, the
faults and their recovery times, the load average. Exits 1 if an invariant fails. The last line
is `SOAK_RESULT {json}`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import time
from typing import Any

from bench import soak_report, soak_stack, support
from bench.soak_checks import outcomes
from bench.soak_faults import KINDS, Injector, unfinished_before
from bench.soak_load import Load
from tests.support.scratch_postgres import scratch_cluster
from tests.support.scratch_redis import ScratchRedis, answers


def pair(text: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    return float(low), float(high or low)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the load runs")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--workers", type=int, default=2, help="`chuong worker --queue high` processes")
    parser.add_argument("--devices", type=int, default=6000, help="devices registered before the load")
    parser.add_argument("--latency-ms", type=float, default=40.0, help="every provider answer this late")
    parser.add_argument("--faults", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)}")
    parser.add_argument(
        "--fault-gap", type=pair, default=(60.0, 120.0), help="seconds between faults: low,high"
    )
    parser.add_argument(
        "--outage-seconds", type=pair, default=(30.0, 60.0), help="provider 503 outage: low,high"
    )
    parser.add_argument("--storm-seconds", type=pair, default=(10.0, 20.0), help="429 storm, latency spike")
    # Per second, Poisson arrivals; modest enough for two cores shared with the service itself.
    parser.add_argument("--broadcasts", type=float, default=1 / 60, help="breaking-news releases per second")
    parser.add_argument("--targeted-pushes", type=float, default=0.3, help="per second, 1-20 devices each")
    parser.add_argument(
        "--inbox-reads", type=float, default=2.0, help="per second (unread count + first page)"
    )
    parser.add_argument("--sign-ins", type=float, default=0.2, help="per second, password + TOTP")
    parser.add_argument("--registrations", type=float, default=1.0, help="per second, 60 % new, 40 % refresh")
    parser.add_argument("--lease-seconds", type=int, default=90, help="CHUONG_DELIVERY_LEASE_SECONDS")
    parser.add_argument("--reconcile-grace-seconds", type=int, default=30)
    parser.add_argument("--reconcile-every-seconds", type=int, default=30)
    parser.add_argument(
        "--aim-seconds",
        type=float,
        default=90.0,
        help="each fault waits up to this for a broadcast under way",
    )
    parser.add_argument("--drain-timeout", type=float, default=900.0, help="seconds, after the load stops")
    args = parser.parse_args(argv)
    unknown = set(args.faults.split(",")) - set(KINDS) - {""}
    if unknown:
        parser.error(f"unknown faults: {sorted(unknown)}")
    return args


async def drain(stack: soak_stack.Stack, limit: float) -> float:
    """Seconds until every notification is finished (the faults ended already)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if await unfinished_before(stack, time.time() + 3600) == 0:
            return time.monotonic() - started
        await asyncio.sleep(1)
    return float("inf")


async def sample_load(samples: list[float], until: float) -> None:
    while time.monotonic() < until:
        samples.append(os.getloadavg()[0])
        await asyncio.sleep(10)


async def soak(args: argparse.Namespace, stack: soak_stack.Stack) -> dict[str, Any]:
    seeded = await soak_stack.seed(stack, devices=args.devices, unregistered=max(1, args.devices // 100))
    accounts = await soak_stack.make_accounts(sign_in_pool=20)
    await support.set_provider_latency(stack.control_url, args.latency_ms)
    stack.start_processes(args.workers)
    await soak_stack.wait_until_up(stack)
    print(
        f"up: {len(seeded)} devices, API {stack.api_url}, {args.workers} workers; "
        f"load for {args.minutes} min",
        flush=True,
    )
    rates = {
        "registrations": args.registrations,
        "inbox_reads": args.inbox_reads,
        "sign_ins": args.sign_ins,
        "targeted_pushes": args.targeted_pushes,
        "broadcasts": args.broadcasts,
    }
    load = Load(stack.api_url, accounts, seeded, args.seed)
    kinds = [kind for kind in args.faults.split(",") if kind]
    injector = Injector(
        stack, seed=args.seed + 1, kinds=kinds, gap=args.fault_gap, args=args, aim_seconds=args.aim_seconds
    )
    started, started_wall = time.monotonic(), time.time()
    until = started + args.minutes * 60
    loads: list[float] = []
    load_seconds = 0.0

    async def run_load() -> None:
        nonlocal load_seconds
        await load.run(rates, until)
        load_seconds = time.monotonic() - started

    jobs = [run_load(), sample_load(loads, until)]
    if kinds:
        jobs.append(injector.run(until))  # the last fault's recovery may end after the load
    await asyncio.gather(*jobs)
    await injector.provider({"outage": False, "error_rate": 0.0, "latency_ms": args.latency_ms})
    drained = await drain(stack, args.drain_timeout)
    print(f"load stopped after {load_seconds:.0f} s; drained in {drained:.1f} s", flush=True)
    results = await outcomes(stack, injector.faults, set(load.broadcasts))
    return soak_report.report(
        args,
        results=results,
        faults=injector.faults,
        ops=load.ops,
        loads=loads,
        load_seconds=load_seconds,
        started=started_wall,
        drained=drained,
        dead=stack.dead(),
        devices=(len(seeded), len(load.devices)),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = soak_stack.workdir()
    redis = ScratchRedis()
    redis.start()
    emulator = soak_stack.start_emulator(workdir)
    stack = None
    try:
        with scratch_cluster(settings=["max_connections = 100"]) as cluster:
            env = soak_stack.environment(cluster, redis.url, emulator, args)
            # This process creates the accounts through the models: its settings name the soak's
            # database and keys too.
            os.environ.update(env)
            from core.config import get_settings

            get_settings.cache_clear()  # an import may have read the settings (.env) already
            if get_settings().database_url != env["CHUONG_DATABASE_URL"]:
                raise RuntimeError("this process must write to the soak's database only")
            stack = soak_stack.Stack(
                cluster=cluster, redis=redis, emulator=emulator, workdir=workdir, env=env
            )

            async def run() -> dict[str, Any]:
                assert stack is not None
                from bench.soak_faults import wait

                await wait(lambda: answers(redis.url), 30)
                # Stopped early (Ctrl-C, or SIGTERM, which a background job gets instead): the
                # processes, the scratch Redis and the cluster are still stopped and removed.
                main_task = asyncio.current_task()
                assert main_task is not None
                for stop_signal in (signal.SIGINT, signal.SIGTERM):
                    asyncio.get_running_loop().add_signal_handler(stop_signal, main_task.cancel)
                try:
                    return await soak(args, stack)
                finally:
                    stack.stop()

            try:
                result = asyncio.run(run())
            except asyncio.CancelledError:
                print("soak stopped before the end: no result", file=sys.stderr)
                return 130
    finally:
        if stack is None:
            support.stop([emulator.process])
            redis.stop()
    print("SOAK_RESULT " + json.dumps(result), flush=True)
    if result["passed"]:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"the processes' logs: {workdir}", file=sys.stderr)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
