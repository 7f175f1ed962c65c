"""Production refuses to start with a missing or unsafe setting, naming every one of them
(issue 12 item 8: production used to fall back to the local emulator without a word)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from core.config import Settings, get_settings
from core.production import ProductionConfigError, ensure_production_ready, production_problems
from tests.production.conftest import PRODUCTION_REQUIRED, env_of

ROOT = Path(__file__).resolve().parents[2]


def settings_of(values: dict[str, Any]) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def refusal(settings: Settings) -> str:
    with pytest.raises(ProductionConfigError) as caught:
        ensure_production_ready(settings)
    return str(caught.value)


def test_a_complete_production_configuration_passes(production_values) -> None:
    assert production_problems(settings_of(production_values)) == []
    ensure_production_ready(settings_of(production_values))


def test_missing_provider_credentials_are_all_named_at_once(production_values) -> None:
    values = {
        key: value
        for key, value in production_values.items()
        if f"CHUONG_{key.upper()}" not in PRODUCTION_REQUIRED
    }

    message = refusal(settings_of(values))

    for setting in PRODUCTION_REQUIRED:
        assert setting in message
    assert f"{len(PRODUCTION_REQUIRED)} setting(s) to fix" in message


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        # What the emulator and the old defaults used: never Google's or Apple's.
        ({"fcm_endpoint": "https://127.0.0.1:8441"}, "CHUONG_FCM_ENDPOINT"),
        ({"fcm_endpoint": "http://fcm.googleapis.com"}, "CHUONG_FCM_ENDPOINT"),
        ({"fcm_project_id": "chuong-emulator"}, "CHUONG_FCM_PROJECT_ID"),
        ({"apns_endpoint_host": "localhost"}, "CHUONG_APNS_ENDPOINT_HOST"),
        ({"apns_endpoint_host": "emulator"}, "CHUONG_APNS_ENDPOINT_HOST"),
        ({"apns_key_id": "EMULATORK1"}, "CHUONG_APNS_KEY_ID"),
        ({"apns_team_id": "EMULATORT1"}, "CHUONG_APNS_TEAM_ID"),
        ({"apns_key_id": "short"}, "CHUONG_APNS_KEY_ID"),
        ({"provider_ca_file": ".run/emulator-ca.pem"}, "CHUONG_PROVIDER_CA_FILE"),
        ({"sms_gateway_url": "http://127.0.0.1:8440/sms/send"}, "CHUONG_SMS_GATEWAY_URL"),
        ({"sms_gateway_api_key": None}, "CHUONG_SMS_GATEWAY_API_KEY"),
        # Development or example secrets.
        ({"token_pepper": "too-short"}, "CHUONG_TOKEN_PEPPER"),
        ({"audit_hmac_key": "change-me-change-me-change-me-change-me"}, "CHUONG_AUDIT_HMAC_KEY"),
        ({"audit_hmac_key": "a" * 64}, "CHUONG_AUDIT_HMAC_KEY"),
        ({"jwt_keys": json.dumps({"k1": "secret"})}, "CHUONG_JWT_KEYS[k1]"),
        ({"jwt_active_kid": "missing"}, "CHUONG_JWT_KEYS"),
        ({"field_encryption_keys": "A" * 43 + "="}, "CHUONG_FIELD_ENCRYPTION_KEYS[0]"),
        ({"field_encryption_keys": "not-a-fernet-key"}, "CHUONG_FIELD_ENCRYPTION_KEYS[0]"),
        ({"metrics_token": None}, "CHUONG_METRICS_TOKEN"),
        ({"metrics_token": "metrics"}, "CHUONG_METRICS_TOKEN"),
        # Open doors and debugging.
        ({"cors_origins": ["*"]}, "CHUONG_CORS_ORIGINS"),
        ({"cors_origins": ["http://portal.example.vn"]}, "CHUONG_CORS_ORIGINS"),
        ({"trusted_proxies": ["0.0.0.0/0"]}, "CHUONG_TRUSTED_PROXIES"),
        ({"log_level": "DEBUG"}, "CHUONG_LOG_LEVEL"),
        # Passkeys bound to a development relying party, or ceremonies from an unsafe origin.
        ({"webauthn_rp_id": "localhost"}, "CHUONG_WEBAUTHN_RP_ID"),
        ({"webauthn_rp_id": "10.0.0.5"}, "CHUONG_WEBAUTHN_RP_ID"),
        ({"webauthn_origins": ["http://console.example.vn"]}, "CHUONG_WEBAUTHN_ORIGINS"),
        ({"webauthn_origins": ["https://console.example.com"]}, "CHUONG_WEBAUTHN_ORIGINS"),
        ({"webauthn_origins": []}, "CHUONG_WEBAUTHN_ORIGINS"),
        ({"argon2_memory_kib": 8192}, "CHUONG_ARGON2_MEMORY_KIB"),
        ({"argon2_time_cost": 1}, "CHUONG_ARGON2_TIME_COST"),
        ({"database_url": "postgresql+asyncpg://postgres@db.internal:5432/chuong"}, "CHUONG_DATABASE_URL"),
        (
            {"database_url": "postgresql+asyncpg://chuong_app:change-me@postgres:5432/chuong"},
            "CHUONG_DATABASE_URL",
        ),
    ],
)
def test_each_unsafe_setting_is_refused_by_name(production_values, changes, named) -> None:
    message = refusal(settings_of({**production_values, **changes}))

    assert named in message


def test_the_emulators_service_account_is_refused(production_values, tmp_path) -> None:
    account = json.loads(Path(production_values["fcm_credentials_file"]).read_text())
    account.update(project_id="chuong-emulator", token_uri="http://127.0.0.1:8440/token")
    path = tmp_path / "emulator-account.json"
    path.write_text(json.dumps(account))

    message = refusal(settings_of({**production_values, "fcm_credentials_file": str(path)}))

    assert "CHUONG_FCM_CREDENTIALS_FILE (token_uri)" in message
    assert "emulator's service account" in message


def test_unreadable_credential_files_are_refused(production_values, tmp_path) -> None:
    (tmp_path / "not-a-key.p8").write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    values = {
        **production_values,
        "fcm_credentials_file": str(tmp_path / "missing.json"),
        "apns_key_file": str(tmp_path / "not-a-key.p8"),
    }

    message = refusal(settings_of(values))

    assert "CHUONG_FCM_CREDENTIALS_FILE: cannot read" in message
    assert "CHUONG_APNS_KEY_FILE: cannot read" in message


def test_one_value_reused_for_two_secrets_is_refused(production_values) -> None:
    shared = production_values["token_pepper"]

    message = refusal(settings_of({**production_values, "audit_hmac_key": shared}))

    assert "CHUONG_TOKEN_PEPPER: the same value as CHUONG_AUDIT_HMAC_KEY" in message


def test_the_environment_name_is_matched_whatever_its_case(production_values) -> None:
    message = refusal(settings_of({**production_values, "environment": " Production", "metrics_token": None}))

    assert "CHUONG_METRICS_TOKEN" in message


def test_other_environments_are_not_checked(production_values) -> None:
    ensure_production_ready(
        settings_of({**production_values, "environment": "development", "metrics_token": None})
    )


def test_the_api_app_refuses_to_build_in_production_without_its_settings(monkeypatch) -> None:
    from cli.asgi import create_app

    settings = get_settings()
    monkeypatch.setattr(settings, "environment", "production")

    with pytest.raises(ProductionConfigError) as caught:
        create_app(manage_resources=False)

    for setting in PRODUCTION_REQUIRED:
        assert setting in str(caught.value)


async def test_the_api_app_builds_and_answers_with_a_complete_production_configuration(
    production_values, monkeypatch
) -> None:
    import httpx

    from cli.asgi import create_app

    settings = get_settings()
    complete = settings_of(production_values)
    for name in production_values:
        monkeypatch.setattr(settings, name, getattr(complete, name))
    app = create_app(manage_resources=False)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        assert (await http.get("/healthz")).status_code == 200
        metrics = await http.get("/metrics")
    assert metrics.status_code == 401  # the metrics token is required


async def test_the_worker_start_up_refuses_in_production_without_its_settings(monkeypatch) -> None:
    from workers.settings import startup

    monkeypatch.setattr(get_settings(), "environment", "production")
    monkeypatch.setattr(get_settings(), "metrics_token", SecretStr(secrets.token_urlsafe(32)))

    with pytest.raises(ProductionConfigError) as caught:
        await startup({})

    assert "CHUONG_FCM_CREDENTIALS_FILE" in str(caught.value)
    assert "CHUONG_METRICS_TOKEN" not in str(caught.value)


def _chuong(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["worker", "--burst"]])
def test_serve_and_worker_exit_non_zero_naming_every_missing_setting(command) -> None:
    env = {**os.environ, "CHUONG_ENVIRONMENT": "production"}

    result = _chuong(*command, env=env)

    assert result.returncode == 3
    for setting in PRODUCTION_REQUIRED:
        assert setting in result.stderr
    # Test-only values of tests/conftest.py are named too: cheap argon2, not a startup-worthy log.
    assert "CHUONG_ARGON2_MEMORY_KIB" in result.stderr


async def test_the_worker_runs_with_a_complete_production_configuration(
    production_values, database_url, redis
) -> None:
    # ``redis`` empties the run's Redis database first: a burst worker runs until no job is left
    # in its queue, deferred ones included, so jobs other tests left there would hold it.
    # The test database's app role (chuong_app), as production connects.
    env = {**os.environ, **env_of(production_values), "CHUONG_DATABASE_URL": database_url}

    result = _chuong("worker", "--burst", env=env, timeout=120)

    assert result.returncode == 0, result.stderr[-2000:]
    assert "refusing to start" not in result.stderr
