"""API CPU per request without a server: requests of a bench.http_load scenario handed straight
to the ASGI app (``cli.asgi`` or the minimal endpoint) in this process, one at a time, the
process's CPU time divided by the count. No uvicorn, no client sockets, no other process: the
app's own share, steadier than the served figures on a shared machine, and a way to profile it
(``py-spy record --gil -- python -m bench.asgi_cpu ...``). Uses bench.inbox_http's kept database.

    .venv/bin/python -m bench.inbox_http --setup-only --database NAME [--readers 20000 --rows 20000]
    .venv/bin/python -m bench.asgi_cpu --database NAME --readers 20000 [--scenario unread-count] [-n 3000]
    .venv/bin/python -m bench.asgi_cpu --database NAME --readers 20000 --scenario minimal
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import uvloop

from bench import inbox_http
from bench.http_load import SCENARIOS, request_for


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.asgi_cpu", description=__doc__.split("\n")[0])
    parser.add_argument("--database", default="chuong_bench_inbox_http")
    parser.add_argument("--readers", type=int, default=1_000_000, help="as the database was built")
    parser.add_argument("--scenario", default="unread-count", choices=sorted(SCENARIOS))
    parser.add_argument("-n", type=int, default=3000, help="requests measured (after 200 of warm-up)")
    return parser.parse_args()


def scope_of(raw: bytes) -> tuple[dict[str, Any], bytes]:
    """The ASGI scope and body of one raw HTTP/1.1 request."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    method, target, _ = lines[0].split(b" ")
    path, _, query = target.partition(b"?")
    headers = [(name.strip().lower(), value.strip()) for name, value in (h.split(b":", 1) for h in lines[1:])]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method.decode(),
        "scheme": "http",
        "path": path.decode(),
        "raw_path": path,
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    return scope, body


async def main(args: argparse.Namespace) -> None:
    scenario = SCENARIOS[args.scenario]
    statuses: Counter[int] = Counter()
    app: Any
    if scenario.server == "minimal":
        from bench.minimal_app import create_app as create_minimal

        app = create_minimal()
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
    else:
        from cli.asgi import create_app

        app = create_app(manage_resources=False)

    async def one() -> None:
        scope, body = scope_of(request_for(scenario, args.readers))
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if delivered:  # nothing more: the client waits for the answer
                await asyncio.Event().wait()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses[message["status"]] += 1

        await app(scope, receive, send)

    for _ in range(200):  # connections, caches, the broadcast window, statements prepared
        await one()
    statuses.clear()
    started = time.process_time()
    for _ in range(args.n):
        await one()
    cpu_ms = (time.process_time() - started) * 1000 / args.n
    load = os.getloadavg()[0]
    print(
        f"{args.scenario}: {cpu_ms:.3f} ms CPU per request",
        f"({args.n:,}; {dict(statuses)}; load {load:.1f})",
    )


if __name__ == "__main__":
    arguments = parse_args()
    arguments.pepper = (Path(tempfile.gettempdir()) / f"{arguments.database}.pepper").read_text().strip()
    os.environ["BENCH_DATABASE"] = arguments.database
    os.environ.update(inbox_http.environment(arguments))
    uvloop.run(main(arguments))
