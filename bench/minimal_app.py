"""The yardstick of bench/inbox_http.py: about the least an API endpoint can cost on this machine —
FastAPI, served by uvicorn with the same settings as the real API, one asyncpg query (a device
row by primary key, the id taken from the bearer credential) from a fixed pool, a JSON answer.

    uvicorn bench.minimal_app:create_app --factory ...   (bench/inbox_http.py starts it)

Nothing is checked: it measures the framework, the server and one database round trip, which is
the floor under any endpoint that reads the database once.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, Request


def create_app() -> FastAPI:
    dsn = os.environ["CHUONG_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    pool: asyncpg.Pool | None = None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        nonlocal pool
        # The API's pool size, but opened on demand: it idles while the API is measured.
        size = int(os.environ.get("CHUONG_DB_POOL_SIZE", "8"))
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=size)
        yield
        await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/minimal")
    async def minimal(request: Request) -> dict[str, str | None]:
        assert pool is not None
        token = request.headers.get("authorization", "").removeprefix("Bearer chd_")
        device_id = uuid.UUID(hex=token.split("_", 1)[0])
        locale = await pool.fetchval("SELECT locale FROM devices WHERE id = $1", device_id)
        return {"locale": locale}

    return app
