"""Building the providers from settings.

Production and local runs take the same path: FCM through firebase-admin with a service-account
file, APNs through aioapns with a .p8 key, each sent to its configured endpoint (Google's and
Apple's by default; the provider emulator's in local runs and tests, set by `make run`).
A provider without credentials sends nothing (`UnconfiguredProvider`); production refuses to
start in that case (core/production.py).
"""

from __future__ import annotations

from pathlib import Path

import firebase_admin

from core.config import Settings
from core.logging import get_logger
from notifications.providers.apns import ApnsProvider
from notifications.providers.apns_client import apns_client
from notifications.providers.base import PushProvider
from notifications.providers.fcm import FcmProvider
from notifications.providers.fcm_app import fcm_app
from notifications.providers.fcm_http1 import FcmHttp1Provider
from notifications.providers.paced import PacedProvider
from notifications.providers.tls import provider_ssl_context
from notifications.providers.unconfigured import UnconfiguredProvider
from notifications.ratecontrol import RateController, family_of

log = get_logger(__name__)


def missing_fcm_settings(settings: Settings) -> list[str]:
    return [] if settings.fcm_credentials_file else ["fcm_credentials_file"]


def missing_apns_settings(settings: Settings) -> list[str]:
    required = ("apns_key_file", "apns_key_id", "apns_team_id", "apns_topic")
    return [name for name in required if not getattr(settings, name)]


def _fcm_provider(settings: Settings) -> PushProvider:
    missing = missing_fcm_settings(settings)
    if missing:
        log.warning("push_provider_not_configured", provider="fcm", missing=missing)
        return UnconfiguredProvider("fcm", missing=missing)
    credentials_file = settings.fcm_credentials_file
    assert credentials_file is not None

    def app_for(project_id: str | None) -> firebase_admin.App:
        return fcm_app(
            credentials_file=credentials_file,
            project_id=project_id,
            endpoint=settings.fcm_endpoint,
            ca_file=settings.provider_ca_file,
            http_timeout=settings.fcm_timeout_seconds,
        )

    app = app_for(settings.fcm_project_id)
    if settings.fcm_transport == "firebase_admin":
        # Another app's project (apps.fcm_project_id) gets an App of its own, on first use.
        return FcmProvider(app, app_for_project=app_for)
    return FcmHttp1Provider(
        app,
        # None: aiohttp's default, the system CA store, as for fcm.googleapis.com.
        ssl_context=provider_ssl_context(settings.provider_ca_file) if settings.provider_ca_file else None,
        max_in_flight=settings.fcm_max_in_flight,
        timeout=settings.fcm_timeout_seconds,
    )


def _apns_provider(settings: Settings, *, sandbox: bool) -> PushProvider:
    missing = missing_apns_settings(settings)
    if missing:
        if not sandbox:  # one warning for both environments
            log.warning("push_provider_not_configured", provider="apns", missing=missing)
        return UnconfiguredProvider("apns", missing=missing)
    assert settings.apns_key_file and settings.apns_key_id and settings.apns_team_id and settings.apns_topic
    client = apns_client(
        key=Path(settings.apns_key_file).read_text(encoding="utf-8"),
        key_id=settings.apns_key_id,
        team_id=settings.apns_team_id,
        topic=settings.apns_topic,
        use_sandbox=sandbox,
        max_connections=settings.apns_max_connections,
        ssl_context=provider_ssl_context(settings.provider_ca_file) if settings.provider_ca_file else None,
        endpoint_host=settings.apns_endpoint_host,
        endpoint_port=settings.apns_endpoint_port,
    )
    return ApnsProvider(
        client,
        timeout=settings.apns_timeout_seconds,
        max_in_flight=settings.apns_max_in_flight,
        environment="sandbox" if sandbox else "production",
    )


def build_providers(settings: Settings, *, paced: bool | None = None) -> dict[str, PushProvider]:
    """Keys match ``notifications.dispatch.provider_key``. Call inside the running event loop.

    Each provider is wrapped in the shared rate controller (``pacing_enabled``), so the FCM
    quota and the APNs pace hold across all worker processes together."""
    providers: dict[str, PushProvider] = {
        "fcm": _fcm_provider(settings),
        "apns:production": _apns_provider(settings, sandbox=False),
        "apns:sandbox": _apns_provider(settings, sandbox=True),
    }
    if not (settings.pacing_enabled if paced is None else paced):
        return providers
    controller = RateController(settings=settings)
    return {
        key: PacedProvider(provider, controller=controller, family=family_of(key))
        for key, provider in providers.items()
    }


async def close_providers(providers: dict[str, PushProvider]) -> None:
    for provider in providers.values():
        await provider.close()
