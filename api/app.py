"""The HTTP API as a FastAPI application: its routers, error shape and request guard.

Only the API. The app a server runs (start-up checks, logging, the enqueuer, the console mounted
under /console) is assembled in the outer layer, ``cli/asgi.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.middleware import RequestGuard
from api.openapi import error_responses
from api.routers import (
    api_clients,
    delegations,
    devices,
    health,
    inbox,
    mfa_resets,
    notifications,
    units,
    users,
)
from api.routers import apps as app_routes
from api.routers import audit as audit_routes
from api.routers import auth as auth_routes
from api.routers import inspection as inspection_routes
from api.routers import news as news_routes
from api.routers import passkeys as passkey_routes
from api.routers import reports as report_routes
from api.routers import sections as section_routes
from api.routers import sms as sms_routes
from api.routers import tracking as tracking_routes
from api.routers import tracking_fields as tracking_field_routes
from core import clock_sync
from core.db import dispose_engine
from core.redis import close_redis


@asynccontextmanager
async def _lifespan(_: FastAPI) -> AsyncIterator[None]:
    # The service clock on the database's, as in the workers: what the API dates (a push's
    # expiry, a scheduled release, a stream slot in Redis) is judged by other processes
    # (docs/delivery.md "Clocks").
    await clock_sync.start()
    yield
    clock_sync.stop()
    await dispose_engine()
    await close_redis()


def create_api_app(*, max_body_bytes: int, manage_resources: bool = True) -> FastAPI:
    app = FastAPI(
        title="Chuông",
        version="0.1.0",
        description="Push and in-app notification service of the portal and tracking apps.",
        lifespan=_lifespan if manage_resources else None,
        # The one JSON error shape, declared for every operation (api/openapi.py).
        responses=error_responses(),
    )
    install_error_handlers(app)
    app.add_middleware(RequestGuard, max_body_bytes=max_body_bytes)
    # Routes are matched in the order included, each by its pattern: the routes of the read surge
    # after a push (apps' inbox reads and device registrations) come first, so they are found
    # without trying the hundred-odd others. No other router's path starts with theirs
    # (tests/api/test_route_order.py).
    app.include_router(inbox.router, prefix="/v1/inbox")
    app.include_router(devices.router, prefix="/v1/devices")
    app.include_router(health.router)
    app.include_router(auth_routes.router, prefix="/v1/auth")
    app.include_router(passkey_routes.router, prefix="/v1/auth/passkeys")
    app.include_router(passkey_routes.admin_router, prefix="/v1/users")
    app.include_router(units.router, prefix="/v1/units")
    app.include_router(users.router, prefix="/v1/users")
    app.include_router(mfa_resets.router, prefix="/v1/mfa-resets")
    app.include_router(delegations.router, prefix="/v1/delegations")
    app.include_router(app_routes.router, prefix="/v1/apps")
    app.include_router(notifications.router, prefix="/v1/notifications")
    app.include_router(api_clients.router, prefix="/v1/api-clients")
    app.include_router(audit_routes.router, prefix="/v1/audit")
    app.include_router(news_routes.router, prefix="/v1/news")
    app.include_router(report_routes.router, prefix="/v1/reports")
    app.include_router(section_routes.router, prefix="/v1/sections")
    app.include_router(sms_routes.router, prefix="/v1/sms")
    app.include_router(tracking_routes.router, prefix="/v1/tracking")
    app.include_router(tracking_field_routes.router, prefix="/v1/tracking")
    app.include_router(inspection_routes.router, prefix="/v1/inspection")
    return app
