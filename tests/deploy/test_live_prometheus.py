"""The alerting chain, live: a real Prometheus scrapes a running API and worker (with the metrics
token) and evaluates the shipped alert rules; a provider outage injected in the emulator makes
ChuongPushProviderErrors fire, and a real Alertmanager routes it to the operators' receiver.

What is changed from the shipped files, and why (time: the test must take seconds, not minutes):

* prometheus.yml: scrape and evaluate every 1 s instead of 15 s; the targets are this test's
  processes (the worker by its address instead of compose's DNS name); the token file is a
  temporary file instead of the compose secret; Alertmanager is this test's.
* alerts.yml: in ChuongPushProviderErrors only, every range ``[5m]`` becomes ``[WINDOW]`` and
  ``for: 5m`` becomes ``for: FOR``: the expression is otherwise the shipped one (checked: putting
  ``[5m]`` back gives it exactly). Every other rule is loaded unchanged.
* alertmanager.yml: the shipped routes, with each receiver's example address replaced by a
  webhook into this test (``/<receiver name>``), and the grouping waits cut to 1 s.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiohttp import web

from tests.support.live_stack import LiveStack, free_port, live_stack
from tests.support.prometheus import alerts, query, running_alertmanager, running_prometheus

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "chuong.json"
ALERT = "ChuongPushProviderErrors"
WINDOW = "15s"  # 15 scrapes a second apart: enough samples for rate()
FOR = "3s"
DEVICES = 5
# The delivery answers per second the rule needs before it judges a provider (its second half).
TRAFFIC = f'sum by (provider) (rate(chuong_push_deliveries_total{{outcome=~"sent|invalid_token|retry|failed"}}[{WINDOW}])) > 0.1'  # noqa: E501


def shortened_rules() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text(encoding="utf-8"))
    (rule,) = [rule for group in document["groups"] for rule in group["rules"] if rule.get("alert") == ALERT]
    shipped = rule["expr"]
    assert shipped.count("[5m]") == 3 and rule["for"] == "5m"
    rule["expr"] = shipped.replace("[5m]", f"[{WINDOW}]")
    rule["for"] = FOR
    assert rule["expr"].replace(f"[{WINDOW}]", "[5m]") == shipped
    assert not re.search(r"\[\d+[smhd]\]", rule["expr"].replace(f"[{WINDOW}]", ""))
    return document


def prometheus_config(stack: LiveStack, token_file: Path, alertmanager: str) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["alerting"]["alertmanagers"][0]["static_configs"] = [
        {"targets": [alertmanager.removeprefix("http://")]}
    ]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    jobs["chuong-api"]["static_configs"] = [{"targets": [stack.api_url.removeprefix("http://")]}]
    worker = jobs["chuong-worker"]
    del worker["dns_sd_configs"]
    worker["static_configs"] = [
        {"targets": [stack.worker_metrics_url.removeprefix("http://").removesuffix("/metrics")]}
    ]
    for job in jobs.values():
        assert job["authorization"]["credentials_file"] == "/run/secrets/chuong_metrics_token"
        job["authorization"]["credentials_file"] = str(token_file)
    return config


def alertmanager_config(webhook: str) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    config["receivers"] = [
        {"name": receiver["name"], "webhook_configs": [{"url": f"{webhook}/{receiver['name']}"}]}
        for receiver in config["receivers"]
    ]

    def quicken(route: dict[str, Any]) -> None:
        route.update(group_wait="1s", group_interval="1s")
        for child in route.get("routes", []):
            quicken(child)

    quicken(config["route"])
    return config


def _write_yaml(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def _ours(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [alert for alert in found if alert["labels"]["alertname"] == ALERT]


async def _webhook(received: list[tuple[str, dict[str, Any]]]) -> tuple[web.AppRunner, str]:
    async def receive(request: web.Request) -> web.Response:
        received.append((request.match_info["receiver"], await request.json()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{receiver}", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def _push_until(
    http: httpx.AsyncClient, stack: LiveStack, devices: list[str], done: Any, *, seconds: float, what: str
) -> Any:
    """Push once a second (traffic for rate()) until ``done()`` answers something."""
    deadline = time.monotonic() + seconds
    while True:
        await stack.push(http, devices)
        result = await done()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} within {seconds:.0f} s\n{stack.logs()}"
        await asyncio.sleep(1)


def _dashboard_queries() -> list[str]:
    """Every panel expression, with Grafana's variables as Grafana would fill them in."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [
        target["expr"]
        for panel in dashboard["panels"]
        for inner in [panel, *panel.get("panels", [])]
        for target in inner.get("targets", [])
    ]
    values = {"$__rate_interval": "1m", "$provider": ".*", "$api_job": ".+", "$worker_job": ".+"}
    filled = []
    for expr in exprs:
        for variable, value in values.items():
            expr = expr.replace(variable, value)
        filled.append(expr)
    return filled


async def test_a_provider_outage_fires_the_provider_alert_through_prometheus_to_alertmanager(
    database_url, redis, tmp_path
) -> None:
    received: list[tuple[str, dict[str, Any]]] = []
    runner, webhook = await _webhook(received)
    try:
        async with (
            live_stack(database_url, tmp_path) as stack,
            httpx.AsyncClient(timeout=30) as http,
            running_alertmanager(
                _write_yaml(tmp_path / "alertmanager.yml", alertmanager_config(webhook)), tmp_path
            ) as alertmanager,
        ):
            token_file = tmp_path / "metrics-token"
            token_file.write_text(stack.metrics_token, encoding="utf-8")
            _write_yaml(tmp_path / "alerts.yml", shortened_rules())
            config = _write_yaml(
                tmp_path / "prometheus.yml", prometheus_config(stack, token_file, alertmanager)
            )
            async with running_prometheus(config, tmp_path) as prometheus:
                await _outage_fires_the_alert(http, stack, prometheus, alertmanager, received)
                # Every panel of the dashboard is a query this Prometheus accepts.
                for expr in _dashboard_queries():
                    await query(http, prometheus, expr)
    finally:
        await runner.cleanup()


async def _outage_fires_the_alert(
    http: httpx.AsyncClient,
    stack: LiveStack,
    prometheus: str,
    alertmanager: str,
    received: list[tuple[str, dict[str, Any]]],
) -> None:
    devices = await stack.register_fcm_devices(http, DEVICES)

    # Both targets scraped with the token.
    async def both_up() -> bool:
        up = await query(http, prometheus, "up == 1")
        return {sample["metric"]["job"] for sample in up} == {"chuong-api", "chuong-worker"}

    await _push_until(http, stack, devices, both_up, seconds=30, what="both targets up")

    # Healthy traffic: enough answers for the rule to judge, all of them successes: not pending.
    async def traffic() -> list[dict[str, Any]]:
        return await query(http, prometheus, TRAFFIC)

    await _push_until(http, stack, devices, traffic, seconds=30, what="delivery traffic in Prometheus")
    for _ in range(3):  # a few evaluations with that traffic
        await stack.push(http, devices)
        await asyncio.sleep(1)
        assert await query(http, prometheus, TRAFFIC)
        assert _ours(await alerts(http, prometheus)) == [], "fires with no error at all"
    rules = (await http.get(f"{prometheus}/api/v1/rules", params={"type": "alert"})).json()
    (rule,) = [rule for group in rules["data"]["groups"] for rule in group["rules"] if rule["name"] == ALERT]
    assert rule["health"] == "ok" and rule["state"] == "inactive", rule

    # The outage: every FCM request answered 503.
    await stack.faults(http, outage=True)

    async def firing() -> list[dict[str, Any]]:
        return [alert for alert in _ours(await alerts(http, prometheus)) if alert["state"] == "firing"]

    (alert,) = await _push_until(http, stack, devices, firing, seconds=40, what=f"{ALERT} firing")
    print(json.dumps(alert, indent=2, ensure_ascii=False))  # docs/operations.md quotes this (pytest -s)
    assert alert["labels"] == {"alertname": ALERT, "provider": "fcm", "severity": "warning"}
    assert float(alert["value"]) > 0.1
    assert alert["annotations"]["runbook_url"].endswith("/docs/operations.md#chuongpushprovidererrors")
    stats = await stack.emulator_stats(http)
    assert (
        stats["fcm"]["outcomes"].get("ok", 0) > 0
        and sum(stats["fcm"]["outcomes"].values()) > stats["fcm"]["outcomes"]["ok"]
    )

    # Alertmanager got it from Prometheus and sent it to the operators (severity warning).
    deadline = time.monotonic() + 20
    while not any(ALERT in json.dumps(body) for _, body in received):
        assert time.monotonic() < deadline, f"Alertmanager sent nothing; received {received}"
        await asyncio.sleep(0.5)
    routed = {
        receiver
        for receiver, body in received
        for sent in body["alerts"]
        if sent["labels"]["alertname"] == ALERT
    }
    assert routed == {"operators"}
    # The fresh database has never recorded a backup or an audit verification, as a new
    # installation has not: those alerts fire at once, to the receivers their severity names.
    by_alert: dict[str, set[str]] = {}
    for receiver, body in received:
        for sent in body["alerts"]:
            by_alert.setdefault(sent["labels"]["alertname"], set()).add(receiver)
    assert by_alert.get("ChuongBackupStale") == {"oncall-engineer"}, by_alert
    assert by_alert.get("ChuongAuditVerificationStale") == {"security-officer", "operators"}, by_alert
    listed = (
        await http.get(f"{alertmanager}/api/v2/alerts", params={"filter": f'alertname="{ALERT}"'})
    ).json()
    assert [item["labels"]["provider"] for item in listed] == ["fcm"]
