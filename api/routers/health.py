"""Liveness, readiness and Prometheus metrics.

``GET /metrics`` shows this process's counters and, for the whole service, the figures one worker
measures periodically and the push breakers' states (notifications/figures.py), and whether
PostgreSQL and Redis answer (``chuong_dependency_up``): docs/observability.md."""

from __future__ import annotations

import asyncio
import os

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Gauge, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import text

from api.deps import PUBLIC
from api.errors import error_response
from core.db import get_engine
from core.metrics_access import metrics_access_allowed
from core.redis import get_redis
from notifications.figures import FiguresCollector

router = APIRouter(tags=["health"])

READY_CHECK_SECONDS = 2.0

DEPENDENCY_UP = Gauge(
    "chuong_dependency_up",
    "1 if the dependency answered the API's check at this scrape",
    ["dependency"],
    multiprocess_mode="mostrecent",
)
FIGURES = FiguresCollector()
REGISTRY.register(FIGURES)


@router.get("/healthz", dependencies=[PUBLIC], summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def dependency_checks() -> dict[str, str]:
    """ "ok" or the error's name for PostgreSQL and Redis. Each check is bounded: a probe that
    waits for a free pooled connection or a stuck Redis must answer "not ready" in time, not hang
    with the requests it is meant to report on."""
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(READY_CHECK_SECONDS):
            async with get_engine().connect() as connection:
                await connection.execute(text("SELECT 1"))
        checks["postgres"] = "ok"
    except Exception as exc:  # readiness reports any failure, it must not raise
        checks["postgres"] = f"error: {type(exc).__name__}"
    try:
        async with asyncio.timeout(READY_CHECK_SECONDS):
            await get_redis().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    return checks


@router.get("/readyz", dependencies=[PUBLIC], summary="PostgreSQL and Redis answer", response_model=None)
async def readyz() -> dict[str, object] | Response:
    checks = await dependency_checks()
    if all(value == "ok" for value in checks.values()):
        return {"status": "ready", "checks": checks}
    return error_response(503, "not_ready", "A dependency is not ready", [checks])


@router.get("/metrics", dependencies=[PUBLIC], summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    if not metrics_access_allowed(request.headers.get("authorization")):
        return error_response(401, "unauthorized", "Metrics token required")
    for dependency, state in (await dependency_checks()).items():
        DEPENDENCY_UP.labels(dependency).set(1 if state == "ok" else 0)
    await FIGURES.refresh()
    return Response(_exposition(), media_type=CONTENT_TYPE_LATEST)


def _exposition() -> bytes:
    """This process's metrics or, when ``chuong serve --workers N`` runs several processes behind
    one port (prometheus_client's multiprocess mode, cli/main.py), all of theirs added up: a
    scrape reaches one process at random, and its own counters alone would jump back and forth."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return generate_latest()
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped in prometheus_client
    registry.register(FIGURES)
    return generate_latest(registry)
