"""Building the providers from settings: real FCM/APNs when credentials are configured, the
local emulator otherwise (the same library code path either way)."""

from __future__ import annotations

from pathlib import Path

import firebase_admin
from aioapns import APNs
from firebase_admin import credentials

from core.config import Settings
from notifications.providers.apns import ApnsProvider
from notifications.providers.base import PushProvider
from notifications.providers.fcm import FcmProvider
from notifications.providers.fcm_http1 import FcmHttp1Provider
from notifications.providers.paced import PacedProvider
from notifications.ratecontrol import RateController, family_of


def _fcm_app(settings: Settings) -> firebase_admin.App:
    if settings.fcm_credentials_file:
        return firebase_admin.initialize_app(
            credentials.Certificate(settings.fcm_credentials_file),
            options={"projectId": settings.fcm_project_id},
            name=f"chuong-fcm-{id(settings)}",
        )
    from firebase_admin._retry import HttpxRetry

    from emulator.clients import firebase_app_for_emulator

    return firebase_app_for_emulator(
        fcm_url=f"https://{settings.emulator_host}:{settings.emulator_fcm_port}",
        ca_path=settings.emulator_ca_path,
        project_id=settings.fcm_project_id,
        # Retries belong to the outbox's ladder (with Retry-After and TTL), not to the client.
        retry_config=HttpxRetry(max_retries=0),
    )


def _apns_client(settings: Settings, *, sandbox: bool) -> APNs:
    if settings.apns_key_file:
        from emulator.clients import with_apns_flow_control_fix

        client = APNs(
            key=Path(settings.apns_key_file).read_text(encoding="utf-8"),
            key_id=settings.apns_key_id,
            team_id=settings.apns_team_id,
            topic=settings.apns_topic,
            use_sandbox=sandbox,
            max_connections=settings.apns_max_connections,
        )
        client.pool.protocol_class = with_apns_flow_control_fix(client.pool.protocol_class)
        return client
    from emulator.clients import apns_client_for_emulator

    return apns_client_for_emulator(
        host=settings.emulator_host,
        port=settings.emulator_apns_port,
        ca_path=settings.emulator_ca_path,
        topic=settings.apns_topic,
        use_sandbox=sandbox,
        max_connections=settings.apns_max_connections,
        fix_flow_control=True,
    )


def _fcm_provider(settings: Settings) -> PushProvider:
    app = _fcm_app(settings)
    if settings.fcm_transport == "firebase_admin":
        return FcmProvider(app)
    ssl_context = None  # the system CA store, as for fcm.googleapis.com
    if not settings.fcm_credentials_file:
        from emulator.tls import client_ssl_context

        ssl_context = client_ssl_context(settings.emulator_ca_path)
    return FcmHttp1Provider(
        app,
        ssl_context=ssl_context,
        max_in_flight=settings.fcm_max_in_flight,
        timeout=settings.fcm_timeout_seconds,
    )


def build_providers(settings: Settings, *, paced: bool | None = None) -> dict[str, PushProvider]:
    """Keys match ``notifications.dispatch.provider_key``. Call inside the running event loop.

    Each provider is wrapped in the shared rate controller (``pacing_enabled``), so the FCM
    quota and the APNs pace hold across all worker processes together."""
    providers: dict[str, PushProvider] = {
        "fcm": _fcm_provider(settings),
        "apns:production": ApnsProvider(
            _apns_client(settings, sandbox=False), timeout=settings.apns_timeout_seconds
        ),
        "apns:sandbox": ApnsProvider(
            _apns_client(settings, sandbox=True), timeout=settings.apns_timeout_seconds
        ),
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
