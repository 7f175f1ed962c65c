"""Before and after, side by side: the API of another tree (``--before``, e.g. a `git archive` of
the branch point), the API of this tree and the minimal endpoint (bench/minimal_app.py), all
served at once with the same uvicorn settings on bench.inbox_http's kept database, then
fixed-rate open-loop runs of each scenario alternating between the three (before, after,
minimal; then the reverse order), so that all three see the same machine. Prints the API CPU
per request (user + system, from /proc) of each and the ratios to the minimal endpoint.

    git archive <commit> | tar -x -C /tmp/before   # and link .venv and .env into it
    .venv/bin/python -m bench.inbox_http --setup-only
    .venv/bin/python -m bench.surge_pairs --before /tmp/before [--rate 40] [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import inbox_http, support

SCENARIOS = "unread-count,first page,register refresh,register again,register new"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.surge_pairs", description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="the other tree (its API is 'before')")
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second of every run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of every run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenarios", default=SCENARIOS)
    parser.add_argument("--database", default="chuong_bench_inbox_http")
    parser.add_argument("--readers", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=8781, help="before; +1 minimal, +2 after")
    return parser.parse_args()


def serve(app: str, port: int, tree: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """uvicorn as bench.inbox_http starts it, importing from ``tree`` (its working directory
    comes first on sys.path)."""
    argv = [sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", "2", "--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    argv += ["--log-level", "warning"]
    process = subprocess.Popen(argv, cwd=tree, env=env | {"PYTHONPATH": str(tree)})  # noqa: S603
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                if len(inbox_http.children(process.pid)) >= 2:
                    return process
        except OSError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"{app} from {tree} did not start")


def run(
    args: argparse.Namespace,
    server: subprocess.Popen[bytes],
    port: int,
    scenario: str,
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    workers = inbox_http.children(server.pid)
    backends = inbox_http.backends(args.database)
    api, postgres = inbox_http._cpu(workers), inbox_http._cpu(backends)
    argv = [sys.executable, "-m", "bench.inbox_http", "--open-loop-client", str(port), scenario]
    argv += [str(rate), str(seconds), str(args.readers)]
    output = subprocess.run(argv, cwd=support.ROOT, capture_output=True, text=True, check=True).stdout  # noqa: S603
    figures: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    requests = max(1, figures["requests"])
    figures["api_ms"] = (inbox_http._cpu(workers) - api) * 1000 / requests
    figures["postgres_ms"] = (inbox_http._cpu(backends) - postgres) * 1000 / requests
    return figures


def main() -> None:
    args = parse_args()
    os.environ["BENCH_DATABASE"] = args.database
    args.pepper = (Path(tempfile.gettempdir()) / f"{args.database}.pepper").read_text().strip()
    env = inbox_http.environment(args)
    ports = {"before": args.port, "minimal": args.port + 1, "after": args.port + 2}
    servers: dict[str, subprocess.Popen[bytes]] = {}
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    try:
        servers["before"] = serve("cli.asgi:create_app", ports["before"], args.before.resolve(), env)
        servers["after"] = serve("cli.asgi:create_app", ports["after"], support.ROOT, env)
        servers["minimal"] = serve("bench.minimal_app:create_app", ports["minimal"], support.ROOT, env)
        for scenario in args.scenarios.split(","):
            for name in ("before", "after", "minimal"):  # warm-up: connections, caches, plans
                run(args, servers[name], ports[name], "minimal" if name == "minimal" else scenario, 20, 3)
            for round_ in range(args.rounds):
                order = ("before", "after", "minimal") if round_ % 2 == 0 else ("minimal", "after", "before")
                for name in order:
                    figures = run(
                        args,
                        servers[name],
                        ports[name],
                        "minimal" if name == "minimal" else scenario,
                        args.rate,
                        args.seconds,
                    )
                    results.setdefault((scenario, name), []).append(figures)
                    print(
                        f"{scenario}, {name}, round {round_ + 1}: API {figures['api_ms']:.2f} ms/req, "
                        f"PostgreSQL {figures['postgres_ms']:.2f}, p50 {figures['p50'] / 1000:.1f} ms, "
                        f"p99 {figures['p99'] / 1000:.1f} ms, errors {figures['errors']}, "
                        f"load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
    finally:
        for server in servers.values():
            server.send_signal(signal.SIGINT)
        for server in servers.values():
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    print(
        f"\nmeans of {args.rounds} alternating runs of {args.seconds:.0f} s at {args.rate:.0f}/s\n"
        "| scenario | API CPU ms/req before | after | minimal | × minimal before | after "
        "| PostgreSQL CPU ms/req before | after | after p50 / max p99 ms |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---|"
    )
    for scenario in dict.fromkeys(s for s, _ in results):
        api = {n: statistics.mean(f["api_ms"] for f in results[(scenario, n)]) for n in ports}
        pg = {n: statistics.mean(f["postgres_ms"] for f in results[(scenario, n)]) for n in ports}
        after = results[(scenario, "after")]
        p50 = statistics.median(f["p50"] for f in after) / 1000
        p99 = max(f["p99"] for f in after) / 1000
        print(
            f"| {scenario} | {api['before']:.2f} | {api['after']:.2f} | {api['minimal']:.2f} "
            f"| {api['before'] / api['minimal']:.1f} | {api['after'] / api['minimal']:.1f} "
            f"| {pg['before']:.2f} | {pg['after']:.2f} | {p50:.0f} / {p99:.0f} |"
        )


if __name__ == "__main__":
    main()
