"""Provider credentials made by the emulator at start-up, shaped like Google's and Apple's.

The app reads them exactly as it reads real ones (`CHUONG_FCM_CREDENTIALS_FILE`,
`CHUONG_APNS_KEY_FILE`), so a local run takes production's code path: the service account's
`token_uri` is the emulator's token endpoint, as a real one's is Google's. The emulator checks
neither signature, so fresh keys on every start cost nothing.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

DEFAULT_PROJECT_ID = "chuong-emulator"
DEFAULT_APNS_TOPIC = "vn.chuong.app"
APNS_KEY_ID = "EMULATORK1"
APNS_TEAM_ID = "EMULATORT1"
SERVICE_ACCOUNT_FILE = "fcm-service-account.json"
APNS_KEY_FILE = "apns-key.p8"


def service_account_info(
    *, token_uri: str, project_id: str = DEFAULT_PROJECT_ID, client_email: str | None = None
) -> dict[str, str]:
    """A service-account key file (as a dict) with a fresh RSA key and `token_uri` set.

    Use the emulator's plain-HTTP token endpoint (`Emulator.token_uri`): google-auth fetches
    tokens with its own requests session, which knows nothing of the emulator CA.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": uuid.uuid4().hex,
        "private_key": pem,
        "client_email": client_email or f"emulator@{project_id}.iam.gserviceaccount.com",
        "client_id": "100000000000000000000",
        "token_uri": token_uri,
    }


def generate_apns_signing_key() -> str:
    """A fresh EC P-256 private key in PKCS#8 PEM, the shape of Apple's .p8 auth keys."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def write_credentials(directory: Path, *, token_uri: str) -> tuple[Path, Path]:
    """Write (service-account JSON, .p8 key) into `directory`; returns their paths."""
    account = _write(directory / SERVICE_ACCOUNT_FILE, json.dumps(service_account_info(token_uri=token_uri)))
    key = _write(directory / APNS_KEY_FILE, generate_apns_signing_key())
    return account, key


def _write(target: Path, text: str) -> Path:
    """Atomically and readable by the owner only, as real key files should be kept."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(text)
    partial.replace(target)
    return target
