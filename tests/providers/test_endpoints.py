"""Providers are built from endpoint and credential settings only (issue 12 item 8): Google's
and Apple's endpoints by default, the emulator only when the settings name it, and nothing at
all (never a silent fallback) when credentials are missing."""

from __future__ import annotations

from aioapns.connection import APNsDevelopmentClientProtocol, APNsProductionClientProtocol

from core.config import Settings, get_settings
from emulator import Emulator
from notifications.providers.base import Outcome
from notifications.providers.registry import build_providers, close_providers
from notifications.providers.sms import SmsOutcome, SmsRequest
from notifications.providers.sms_registry import build_sms_provider
from notifications.providers.unconfigured import NOT_CONFIGURED
from tests.providers.conftest import emulated
from tests.providers.test_fcm_transports import requests_for, unique

NO_CREDENTIALS = {
    "fcm_credentials_file": None,
    "apns_key_file": None,
    "apns_key_id": None,
    "apns_team_id": None,
    "apns_topic": None,
    "sms_gateway_url": None,
    "pacing_enabled": False,
}


def unconfigured() -> Settings:
    return get_settings().model_copy(update=NO_CREDENTIALS)


async def test_without_credentials_nothing_is_sent_anywhere(emulator: Emulator) -> None:
    # The old code fell back to the emulator's address without a word (production included).
    providers = build_providers(unconfigured())
    try:
        for key in ("fcm", "apns:production", "apns:sandbox"):
            results = await providers[key].send(requests_for([unique()]))
            assert [(r.outcome, r.error_code) for r in results] == [(Outcome.RETRY, NOT_CONFIGURED)]
    finally:
        await close_providers(providers)
    assert len(emulator.log) == 0


async def test_without_a_gateway_no_sms_is_sent(emulator: Emulator) -> None:
    provider = build_sms_provider(unconfigured())
    try:
        result = await provider.send(
            SmsRequest(to="+84901234567", text="x", sender="CHUONG", reference="r-1")
        )
    finally:
        await provider.close()
    assert (result.outcome, result.error_code) == (SmsOutcome.RETRY, "not_configured")
    assert emulator.sms.attempts == 0


async def test_by_default_the_clients_dial_google_and_apple_with_the_flow_control_fix(
    emulator: Emulator,
) -> None:
    # The emulator's credential files, but none of its endpoints: what production builds.
    settings = emulated(emulator, fcm_endpoint=Settings.model_fields["fcm_endpoint"].default)
    settings = settings.model_copy(update={"apns_endpoint_host": None, "provider_ca_file": None})
    providers = build_providers(settings)
    try:
        assert providers["fcm"].url == "https://fcm.googleapis.com/v1/projects/chuong-emulator/messages:send"  # type: ignore[attr-defined]
        production = providers["apns:production"].client.pool.protocol_class  # type: ignore[attr-defined]
        sandbox = providers["apns:sandbox"].client.pool.protocol_class  # type: ignore[attr-defined]
        assert issubclass(production, APNsProductionClientProtocol)
        assert issubclass(sandbox, APNsDevelopmentClientProtocol)
        assert (production.APNS_SERVER, production.APNS_PORT) == ("api.push.apple.com", 443)
        assert sandbox.APNS_SERVER == "api.development.push.apple.com"
        for protocol in (production, sandbox):
            assert protocol.on_data_received is not APNsProductionClientProtocol.on_data_received
    finally:
        await close_providers(providers)


async def test_the_endpoint_settings_reach_the_emulator_on_productions_code_path(emulator: Emulator) -> None:
    providers = build_providers(emulated(emulator))
    try:
        token = unique()
        for key in ("fcm", "apns:production"):
            [result] = await providers[key].send(requests_for([token]))
            assert result.outcome is Outcome.ACCEPTED
        apns = providers["apns:production"].client.pool.protocol_class  # type: ignore[attr-defined]
        dialled = (apns.APNS_SERVER, apns.APNS_PORT)
        assert dialled == (emulator.client_host, emulator.apns_port)
    finally:
        await close_providers(providers)
    assert {record.provider for record in emulator.log.find(token=token)} == {"fcm", "apns"}
