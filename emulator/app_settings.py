"""The app settings that aim Chuông at a running emulator (local runs, tests, benchmarks).

Shipped code knows nothing of the emulator: it has endpoint, credential and CA settings whose
defaults are Google's and Apple's. These values point them here. Keys are `core.config.Settings`
field names; `as_env` gives the `CHUONG_*` variables for another process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emulator.credentials import APNS_KEY_ID, APNS_TEAM_ID, DEFAULT_APNS_TOPIC


def app_settings(addresses: Mapping[str, Any]) -> dict[str, Any]:
    """From `Emulator.addresses()` (also the JSON of the EMULATOR READY line)."""
    return {
        "fcm_endpoint": addresses["fcm_url"],
        "fcm_credentials_file": addresses["fcm_credentials_file"],
        "fcm_project_id": None,  # the service account's
        "apns_key_file": addresses["apns_key_file"],
        "apns_key_id": APNS_KEY_ID,
        "apns_team_id": APNS_TEAM_ID,
        "apns_topic": DEFAULT_APNS_TOPIC,
        "apns_endpoint_host": addresses["apns_host"],
        "apns_endpoint_port": int(addresses["apns_port"]),
        "provider_ca_file": addresses["ca_path"],
        "sms_gateway_url": addresses["sms_url"],
    }


def as_env(settings: Mapping[str, Any]) -> dict[str, str]:
    return {f"CHUONG_{name.upper()}": str(value) for name, value in settings.items() if value is not None}
