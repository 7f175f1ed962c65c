"""Each worker process's Prometheus endpoint: ``GET /metrics``, behind the same bearer token as the
API's (core/metrics_access.py), on by default (docs/observability.md).

Served by aiohttp (already a dependency: the FCM transport) inside the worker's own event loop,
not by prometheus_client's ``start_http_server``: that one has no way to ask for a token, and it
answers from a thread of its own, so it would keep reporting a worker whose event loop is stuck.
Here a blocked loop leaves the scrape unanswered, and Prometheus sees the worker down.

Ports: a worker listens on the first free port from ``worker_metrics_port`` up, trying
``PORTS_TRIED`` of them, and logs the one it got. In compose every worker container has its own
network namespace, so all of them get the base port (9101) and Prometheus finds them through the
service's DNS name; on a host running N workers they take 9101 … 9100+N, whatever order they start
in, and Prometheus lists those N ports for the host. ``worker_metrics_port`` 0 turns it off.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest

from core.config import Settings
from core.logging import get_logger
from core.metrics_access import metrics_access_allowed

log = get_logger(__name__)

PORTS_TRIED = 32

WORKER_INFO = Gauge(
    "chuong_worker_info",
    "1 for each running worker process, labelled with its queue (high, bulk) and role (ordinary, urgent)",
    ["queue", "role"],
)


async def _metrics(request: web.Request) -> web.Response:
    if not metrics_access_allowed(request.headers.get("Authorization")):
        return web.json_response(
            {"error": {"code": "unauthorized", "message": "Metrics token required", "details": []}},
            status=401,
        )
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


@dataclass
class MetricsServer:
    runner: web.AppRunner
    port: int

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_metrics_server(
    settings: Settings, *, queue: str, role: str = "ordinary"
) -> MetricsServer | None:
    """Listen on the first free port from ``settings.worker_metrics_port``; None when it is off
    or every port tried was taken (logged: the worker still works, but cannot be watched)."""
    if not settings.worker_metrics_port:
        return None
    WORKER_INFO.labels(queue, role).set(1)
    app = web.Application()
    app.router.add_get("/metrics", _metrics)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    first = settings.worker_metrics_port
    for port in range(first, min(first + PORTS_TRIED, 65536)):
        site = web.TCPSite(runner, settings.worker_metrics_host, port)
        try:
            await site.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                await runner.cleanup()
                raise
            continue
        log.info("worker_metrics_listening", host=settings.worker_metrics_host, port=port, queue=queue)
        return MetricsServer(runner=runner, port=port)
    await runner.cleanup()
    log.error(
        "worker_metrics_no_free_port",
        host=settings.worker_metrics_host,
        ports=f"{first}-{first + PORTS_TRIED - 1}",
        action="set CHUONG_WORKER_METRICS_PORT to a free range",
    )
    return None
