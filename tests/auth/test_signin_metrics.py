"""Sign-in failures and refusals are counted for Prometheus (auth/metrics.py), by audit action and
fixed reason, never by account: what the alert ChuongSignInFailureSpike watches."""

from __future__ import annotations

from prometheus_client import REGISTRY

from auth.roles import Role
from core import clock
from core.config import get_settings
from tests.support.factories import make_account, make_unit

LOGIN = "/v1/auth/login"


def _count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_failed_and_refused_sign_ins_are_counted_by_reason(client, monkeypatch):
    account = await make_account(role=Role.TASK_OFFICER, unit=await make_unit())
    failures = "chuong_signin_failures_total"
    throttled = "chuong_signin_throttled_total"
    before = {
        "unknown": _count(failures, action="auth.login_failed", reason="unknown_user"),
        "password": _count(failures, action="auth.login_failed", reason="password"),
        "throttled": _count(throttled, reason="account_throttled"),
        "limited": _count(throttled, reason="address_limited"),
    }

    await client.post(LOGIN, json={"username": "nobody-here", "password": "wrong password here"})
    for _ in range(3):  # the third failure starts the account's back-off
        await client.post(LOGIN, json={"username": account.username, "password": "wrong password here"})
    refused = await client.post(LOGIN, json={"username": account.username, "password": account.password})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "throttled"

    assert _count(failures, action="auth.login_failed", reason="unknown_user") == before["unknown"] + 1
    assert _count(failures, action="auth.login_failed", reason="password") == before["password"] + 3
    assert _count(throttled, reason="account_throttled") == before["throttled"] + 1

    clock.advance(60)
    monkeypatch.setattr(get_settings(), "rate_limit_login_per_ip", "1/minute")
    await client.post(LOGIN, json={"username": "nobody-here", "password": "wrong password here"})
    limited = await client.post(LOGIN, json={"username": "nobody-here", "password": "wrong password here"})
    assert limited.status_code == 429
    assert _count(throttled, reason="address_limited") == before["limited"] + 1

    metrics = (await client.get("/metrics")).text
    assert account.username not in metrics and "nobody-here" not in metrics
