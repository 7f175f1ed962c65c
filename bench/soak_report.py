"""What the soak prints (bench/soak.py): the HTTP operations, the faults and their recovery, the
invariants per broadcast and over the targeted pushes; and the verdict."""

from __future__ import annotations

import argparse
import os
from collections import Counter
from typing import Any

from bench.soak_checks import Outcome
from bench.soak_faults import Fault
from bench.soak_load import Ops, Sample


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else 0.0


def during_a_fault(sample: Sample, faults: list[Fault], end: float) -> bool:
    return any(f.started <= sample.at <= (f.recovered or end) for f in faults)


def operations(ops: Ops, faults: list[Fault]) -> dict[str, dict[str, Any]]:
    end = max((s.at for samples in ops.samples.values() for s in samples), default=0.0)
    figures = {}
    for name, samples in sorted(ops.samples.items()):
        errors = [s for s in samples if not s.ok]
        outside = [s for s in errors if not during_a_fault(s, faults, end)]
        seconds = [s.seconds * 1000 for s in samples]
        figures[name] = {
            "requests": len(samples),
            "errors": len(errors),
            "errors_outside_faults": len(outside),
            "statuses": sorted({s.status for s in errors}),
            "p50_ms": round(percentile(seconds, 0.5), 1),
            "p99_ms": round(percentile(seconds, 0.99), 1),
        }
    return figures


def line(o: Outcome, t0: float) -> str:
    rows = "/".join(str(o.rows.get(status, 0)) for status in ("sent", "invalid", "failed"))
    verdict = "ok" if o.ok else "FAIL"
    return (
        f"  {o.id[:8]} +{o.created - t0:6.0f} s {o.status:9} targeted {o.targeted:5} "
        f"sent/invalid/failed {rows:>14} "
        f"lost {o.lost} duplicates {o.duplicates}/{o.bound} open batches {o.open_batches} "
        f"counters {'=' if o.counters_match else '≠'} rows  {verdict}"
    )


def report(
    args: argparse.Namespace,
    *,
    results: list[Outcome],
    faults: list[Fault],
    ops: Ops,
    loads: list[float],
    load_seconds: float,
    started: float,
    drained: float,
    dead: list[str],
    devices: tuple[int, int],
) -> dict[str, Any]:
    t0 = started
    print(
        f"\nSOAK {load_seconds / 60:.1f} min of load, seed {args.seed}, "
        f"{args.workers} sending workers + 1 bulk, "
        f"provider latency {args.latency_ms:.0f} ms; {devices[0]} devices seeded, {devices[1]} registered"
    )
    if loads:
        mean = sum(loads) / len(loads)
        print(
            f"load average (1 min) during the run: mean {mean:.1f}, max {max(loads):.1f} "
            f"on {os.cpu_count()} CPUs"
        )
    print("\nHTTP operations            requests  errors (outside faults)   p50 ms   p99 ms")
    figures = operations(ops, faults)
    for name, f in figures.items():
        print(
            f"  {name:24} {f['requests']:8} {f['errors']:7} ({f['errors_outside_faults']:3}) "
            f"{f['statuses']!s:12}"
            f" {f['p50_ms']:8.1f} {f['p99_ms']:8.1f}"
        )
    if ops.skipped:
        print(f"  arrivals skipped (more than 64 requests in flight): {ops.skipped}")
    print("\nfaults")
    for fault in faults:
        took = fault.recovery_seconds
        recovered = f"recovered in {took:.1f} s" if took is not None else "NOT RECOVERED"
        if fault.api_back is not None:
            recovered += f" (API ready after {fault.api_back - fault.ended:.1f} s)"
        at = fault.started - t0
        aimed = "aimed" if fault.aimed else "not aimed"
        print(f"  +{at:6.0f} s {fault.kind:20} {aimed}, {fault.detail}; {recovered}; bound {fault.bound}")
    broadcasts = [o for o in results if o.kind == "broadcast"]
    targeted = [o for o in results if o.kind == "targeted"]
    print(f"\nbroadcasts ({len(broadcasts)})")
    for o in broadcasts:
        print(line(o, t0))
    failing = [o for o in targeted if not o.ok]
    rows = Counter[str]()
    for o in targeted:
        rows.update(o.rows)
    print(
        f"\ntargeted pushes ({len(targeted)}): {sum(o.targeted for o in targeted)} devices targeted, "
        f"{rows['sent']} sent, {rows['invalid']} invalid, {rows['failed']} failed, "
        f"lost {sum(o.lost for o in targeted)}, duplicates {sum(o.duplicates for o in targeted)} "
        f"(in {sum(1 for o in targeted if o.duplicates)} pushes), "
        f"open batches {sum(o.open_batches for o in targeted)}, "
        f"counters ≠ rows in {sum(1 for o in targeted if not o.counters_match)}"
    )
    for o in failing:
        print(line(o, t0))
    duplicates, bound = sum(o.duplicates for o in results), sum(f.bound for f in faults)
    totals = {
        "notifications": len(results),
        "broadcasts": len(broadcasts),
        "targeted": len(targeted),
        "deliveries": sum(o.targeted for o in results),
        "lost": sum(o.lost for o in results),
        "duplicates": duplicates,
        "bound": bound,
        "over_bound": sum(1 for o in results if o.duplicates > o.bound),
        "unfinished": sum(1 for o in results if o.status != "completed"),
        "open_batches": sum(o.open_batches for o in results),
        "counter_mismatches": sum(1 for o in results if not o.counters_match),
        "kills": sum(1 for f in faults if f.kind == "kill_worker"),
        "unrecovered_faults": sum(1 for f in faults if f.recovered is None),
        "exited": dead,
    }
    checks = {
        "zero lost deliveries": totals["lost"] == 0,
        "duplicates within the faults' bound": totals["over_bound"] == 0 and duplicates <= bound,
        "every notification completed": totals["unfinished"] == 0,
        "no batch left open": totals["open_batches"] == 0,
        "counters equal to the rows": totals["counter_mismatches"] == 0,
        "every fault recovered": totals["unrecovered_faults"] == 0 and drained != float("inf"),
        "no process exited on its own": not dead,
    }
    print("\ninvariants")
    for name, passed in checks.items():
        print(f"  {'PASS' if passed else 'FAIL'}  {name}")
    print(
        f"  ({totals['deliveries']} deliveries in {len(results)} notifications; "
        f"{totals['duplicates']} duplicates, "
        f"{totals['kills']} workers killed, the faults' bound {totals['bound']}; drained in {drained:.1f} s)"
    )
    return {
        "passed": all(checks.values()),
        "checks": checks,
        "totals": totals,
        "operations": figures,
        "faults": [
            {
                "kind": f.kind,
                "detail": f.detail,
                "aimed": f.aimed,
                "recovery_seconds": f.recovery_seconds,
                "bound": f.bound,
            }
            for f in faults
        ],
        "load_average": {"mean": sum(loads) / len(loads) if loads else None, "max": max(loads, default=None)},
        "minutes": load_seconds / 60,
        "drained_seconds": drained,
    }
