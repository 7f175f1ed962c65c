"""The ASGI app that ``chuong serve`` runs: the API with the web console mounted under /console.

Assembled here, in the outer layer, because it joins two transports (``api`` and ``console``) and
wires arq in as the enqueuer; neither transport imports the other's app. The tests
(``tests/conftest.py``) and the HTTP benchmarks serve this same factory.
"""

from __future__ import annotations

from fastapi import FastAPI

from api.app import create_api_app
from auth.networks import check_network_rules
from auth.passkey_policy import check_passkey_policy
from auth.session_limits import check_session_limits
from console.app import mount_console
from core.config import get_settings
from core.jobs import set_enqueuer
from core.logging import configure_logging
from core.production import ensure_production_ready, log_production_warnings
from inbox import fanout as inbox_fanout
from notifications.on_created import set_on_created
from workers.queue import enqueue


def create_app(*, manage_resources: bool = True) -> FastAPI:
    """``manage_resources=False`` leaves the engine and Redis open at shutdown (the tests own them)."""
    settings = get_settings()
    # Before anything else: production with a missing or unsafe setting must not serve at all.
    ensure_production_ready(settings)
    # A typo in CHUONG_SESSION_LIMITS_BY_ROLE stops the start, not every sign-in later.
    check_session_limits()
    # Likewise a role or permission in CHUONG_ALLOWED_NETWORKS that does not exist.
    check_network_rules()
    check_passkey_policy()  # and in CHUONG_PASSKEY_REQUIRED_ROLES
    configure_logging(level=settings.log_level, json=settings.log_json)
    log_production_warnings(settings)  # unverified database or Redis connections across hosts
    # Jobs a request's transaction defers go to arq once it has committed (api/deps.py).
    set_enqueuer(enqueue)
    # A notification created in a request writes its inbox work in the same transaction
    # (notifications/on_created.py: inbox depends on notifications, not the reverse).
    set_on_created(inbox_fanout.schedule)
    app = create_api_app(max_body_bytes=settings.max_body_bytes, manage_resources=manage_resources)
    # The web console (HTML, cookie sessions): a sub-app under /console, outside the OpenAPI schema,
    # behind the API's request guard (the outer app's middleware runs for mounted apps too).
    mount_console(app)
    return app
