"""The real app behind uvicorn on a free port, in the test's own event loop (so it shares the
per-test database, Redis and the controllable clock): for what an in-process ASGI client cannot
show, such as a browser (tests/console) or a client that drops a streaming connection."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn


@asynccontextmanager
async def serve(app: object) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        log_level="warning",
        # As `chuong serve` runs it (cli/main.py): X-Forwarded-For is api/client_ip.py's to read,
        # against CHUONG_TRUSTED_PROXIES; uvicorn's own reading would believe 127.0.0.1's header.
        proxy_headers=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
