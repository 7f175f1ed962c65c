"""The FastAPI application factory."""

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
from api.routers import audit as audit_routes
from api.routers import auth as auth_routes
from api.routers import news as news_routes
from api.routers import sections as section_routes
from api.routers import sms as sms_routes
from api.routers import tracking as tracking_routes
from auth.session_limits import check_session_limits
from console.app import mount_console
from core.config import get_settings
from core.db import dispose_engine
from core.jobs import set_enqueuer
from core.logging import configure_logging
from core.production import ensure_production_ready
from core.redis import close_redis
from inbox import fanout as inbox_fanout
from notifications.on_created import set_on_created
from workers.queue import enqueue


@asynccontextmanager
async def _lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
    await dispose_engine()
    await close_redis()


def create_app(*, manage_resources: bool = True) -> FastAPI:
    settings = get_settings()
    # Before anything else: production with a missing or unsafe setting must not serve at all.
    ensure_production_ready(settings)
    # A typo in CHUONG_SESSION_LIMITS_BY_ROLE stops the start, not every sign-in later.
    check_session_limits()
    configure_logging(level=settings.log_level, json=settings.log_json)
    # Jobs a request's transaction defers go to arq once it has committed (api/deps.py).
    set_enqueuer(enqueue)
    # A notification created in a request writes its inbox work in the same transaction
    # (notifications/on_created.py: inbox depends on notifications, not the reverse).
    set_on_created(inbox_fanout.schedule)
    app = FastAPI(
        title="Chuông",
        version="0.1.0",
        description="Push and in-app notification service of the portal and tracking apps.",
        lifespan=_lifespan if manage_resources else None,
        # The one JSON error shape, declared for every operation (api/openapi.py).
        responses=error_responses(),
    )
    install_error_handlers(app)
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes)
    app.include_router(health.router)
    app.include_router(auth_routes.router, prefix="/v1/auth")
    app.include_router(units.router, prefix="/v1/units")
    app.include_router(users.router, prefix="/v1/users")
    app.include_router(mfa_resets.router, prefix="/v1/mfa-resets")
    app.include_router(delegations.router, prefix="/v1/delegations")
    app.include_router(devices.router, prefix="/v1/devices")
    app.include_router(notifications.router, prefix="/v1/notifications")
    app.include_router(inbox.router, prefix="/v1/inbox")
    app.include_router(api_clients.router, prefix="/v1/api-clients")
    app.include_router(audit_routes.router, prefix="/v1/audit")
    app.include_router(news_routes.router, prefix="/v1/news")
    app.include_router(section_routes.router, prefix="/v1/sections")
    app.include_router(sms_routes.router, prefix="/v1/sms")
    app.include_router(tracking_routes.router, prefix="/v1/tracking")
    # The web console (HTML, cookie sessions): a sub-app under /console, outside the OpenAPI schema.
    mount_console(app)
    return app
