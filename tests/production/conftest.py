"""A complete production configuration, with fake (but well-formed) provider credentials."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

# Every setting that production requires, or that must differ from the test environment's values
# (tests/conftest.py sets cheap argon2 costs and a WARNING log level through the environment).
PRODUCTION_REQUIRED = (
    "CHUONG_FCM_CREDENTIALS_FILE",
    "CHUONG_APNS_KEY_FILE",
    "CHUONG_APNS_KEY_ID",
    "CHUONG_APNS_TEAM_ID",
    "CHUONG_APNS_TOPIC",
    "CHUONG_SMS_GATEWAY_URL",
    "CHUONG_METRICS_TOKEN",
)


def _pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture
def credential_files(tmp_path: Path) -> dict[str, str]:
    """A Google-shaped service-account file and an Apple-shaped .p8 key (never used to send)."""
    account = tmp_path / "service-account.json"
    account.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "chuong-portal-prod",
                "private_key_id": secrets.token_hex(20),
                "private_key": _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)).decode(),
                "client_email": "push@chuong-portal-prod.iam.gserviceaccount.com",
                "client_id": "1" * 21,
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    key = tmp_path / "AuthKey_AB12CD34EF.p8"
    key.write_bytes(_pem(ec.generate_private_key(ec.SECP256R1())))
    return {"fcm_credentials_file": str(account), "apns_key_file": str(key)}


@pytest.fixture
def production_values(credential_files: dict[str, str]) -> dict[str, Any]:
    """Settings field → value of a configuration that passes every check."""
    return {
        "environment": "production",
        "database_url": f"postgresql+asyncpg://chuong_app:{secrets.token_urlsafe(24)}@db.internal:5432/chuong",
        "field_encryption_keys": f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}",
        "audit_hmac_key": secrets.token_urlsafe(48),
        "jwt_keys": json.dumps({"k1": secrets.token_urlsafe(48)}),
        "jwt_active_kid": "k1",
        "token_pepper": secrets.token_urlsafe(48),
        "metrics_token": secrets.token_urlsafe(32),
        **credential_files,
        "apns_key_id": "AB12CD34EF",
        "apns_team_id": "TEAM123456",
        "apns_topic": "vn.chuong.portal",
        "sms_gateway_url": "https://sms.example.vn/api/send",
        "sms_gateway_api_key": secrets.token_urlsafe(32),
        "cors_origins": ["https://portal.example.vn"],
        "trusted_proxies": ["10.0.0.0/8"],
        "allowed_networks": {"users:write": ["10.20.0.0/16"], "system_admin": ["10.20.0.0/16"]},
        "webauthn_rp_id": "example.vn",
        "webauthn_origins": ["https://console.example.vn"],
        "log_level": "INFO",
        "argon2_time_cost": 3,
        "argon2_memory_kib": 65536,
        "argon2_parallelism": 4,
    }


def env_of(values: dict[str, Any]) -> dict[str, str]:
    """The same configuration as CHUONG_* variables, for a child process."""
    env = {}
    for name, value in values.items():
        if isinstance(value, dict):
            text = json.dumps(value)
        else:
            text = ",".join(value) if isinstance(value, list) else str(value)
        env[f"CHUONG_{name.upper()}"] = text
    return env
