"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from api.deps import PUBLIC
from api.errors import error_response
from core.config import get_settings
from core.crypto import constant_time_equals
from core.db import get_engine
from core.redis import get_redis

router = APIRouter(tags=["health"])

READY_CHECK_SECONDS = 2.0


@router.get("/healthz", dependencies=[PUBLIC], summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", dependencies=[PUBLIC], summary="PostgreSQL and Redis answer", response_model=None)
async def readyz() -> dict[str, object] | Response:
    checks: dict[str, str] = {}
    # Each check is bounded: a probe that waits for a free pooled connection or a stuck Redis
    # must answer "not ready" in time, not hang with the requests it is meant to report on.
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
    if all(value == "ok" for value in checks.values()):
        return {"status": "ready", "checks": checks}
    return error_response(503, "not_ready", "A dependency is not ready", [checks])


@router.get("/metrics", dependencies=[PUBLIC], summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    token = get_settings().metrics_token
    if token is not None:
        supplied = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not constant_time_equals(supplied, token.get_secret_value()):
            return error_response(401, "unauthorized", "Metrics token required")
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
