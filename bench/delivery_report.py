"""The delivery benchmark's printed report: per phase, the N-process raw baseline next to the
pipeline that ran right after it, their ratio, CPU per delivery on each side and the load average
(the machine is shared; a ratio is only as good as the load it was measured under)."""

from __future__ import annotations

import argparse
import json
import os
import platform

from bench.baseline import Figures


def report(
    args: argparse.Namespace, raw: dict[str, Figures], pipeline: dict[str, Figures], rss: list[float]
) -> None:
    print(
        f"\n## {args.devices:,} devices, {args.workers} worker(s) and {args.workers} raw process(es), "
        f"provider latency {args.latency_ms:g} ms, FCM transport {args.transport}"
    )
    print(f"machine: {os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}\n")
    print("| run | messages | seconds | msg/s | client CPU ms/msg | PostgreSQL CPU ms/msg ", end="")
    print("| emulator CPU ms/msg | load average (1 min) start → end |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name in pipeline:
        for f in (raw[name], pipeline[name]):
            print(
                f"| {f.label} | {f.messages:,} | {f.seconds:.1f} | {f.rate:,.0f} | {f.ms(f.client_cpu):.3f} "
                f"| {f.ms(f.postgres_cpu):.3f} | {f.ms(f.emulator_cpu):.3f} "
                f"| {f.load[0]:.2f} → {f.load[1]:.2f} |"
            )
    print()
    summary = {}
    for name, f in pipeline.items():
        base = raw[name]
        ratio = f.rate / base.rate
        print(
            f"{name}: pipeline {f.rate:,.0f}/s ÷ raw ×{args.workers} {base.rate:,.0f}/s = {ratio:.2f}; "
            f"CPU ms/delivery: workers {f.ms(f.client_cpu):.3f}, raw processes {base.ms(base.client_cpu):.3f}"
        )
        summary[name] = {
            "pipeline_rate": round(f.rate),
            "raw_rate": round(base.rate),
            "pipeline_seconds": round(f.seconds, 3),
            "raw_seconds": round(base.seconds, 3),
            "raw_messages": base.messages,
            "ratio": round(ratio, 3),
            "worker_cpu_ms": round(f.ms(f.client_cpu), 3),
            "raw_cpu_ms": round(base.ms(base.client_cpu), 3),
            "load": {"raw": [round(x, 2) for x in base.load], "pipeline": [round(x, 2) for x in f.load]},
        }
    print(f"peak worker RSS (VmHWM): {', '.join(f'{mb:.0f} MB' for mb in rss)}")
    # One line for scripts (and the test): the figures above, per phase.
    print(
        "FIGURES " + json.dumps({"latency_ms": args.latency_ms, "workers": args.workers, "phases": summary})
    )
