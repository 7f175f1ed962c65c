"""The compose `monitoring` profile (Prometheus, Alertmanager, Grafana), read without a Docker
engine: the services are there behind the profile, every file they mount exists, the pieces name
each other right (Prometheus → the API, the workers, Alertmanager; Grafana → Prometheus and the
dashboard), Debian's promtool accepts prometheus.yml with the shipped rules, and Debian's amtool
accepts alertmanager.yml and routes every alert of alerts.yml to the people its severity names."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
MONITORING = ("prometheus", "alertmanager", "grafana")
# Who gets what (docs/operations.md "Who gets which alert").
BY_SEVERITY = {"critical": "oncall-engineer", "warning": "operators"}
SECURITY_ALERTS = {
    "ChuongSignInFailureSpike",
    "ChuongAuditVerificationFailed",
    "ChuongAuditVerificationStale",
}


def _yaml(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


def _compose() -> dict[str, Any]:
    return _yaml(ROOT / "docker-compose.yml")


def _tool(name: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    path = shutil.which(name)
    assert path, (
        f"{name} is missing: scripts/dev.sh installs it (Debian's prometheus / prometheus-alertmanager)"
    )
    return subprocess.run(  # noqa: S603 - Debian's tools on the repository's files
        [path, *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path → host path of the service's bind mounts from the checkout."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts[target] = ROOT / source
    return mounts


def test_the_monitoring_services_run_only_with_their_profile() -> None:
    services = _compose()["services"]
    for name in MONITORING:
        assert services[name]["profiles"] == ["monitoring"], name
        for port in services[name].get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond the host"
    # `docker compose up` without a profile still starts the service alone.
    for name in ("postgres", "redis", "api", "worker", "worker-urgent", "worker-bulk"):
        assert "profiles" not in services[name], name


def test_every_file_a_service_mounts_exists() -> None:
    for name, service in _compose()["services"].items():
        for target, source in _mounts(service).items():
            assert source.exists(), f"{name} mounts {source.relative_to(ROOT)} at {target}: missing"


def test_prometheus_loads_its_config_and_rules_from_the_mount_and_scrapes_with_the_token() -> None:
    compose = _compose()
    services = compose["services"]
    prometheus = services["prometheus"]
    mounts = _mounts(prometheus)
    assert mounts["/etc/prometheus"] == PROMETHEUS_DIR
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config = _yaml(PROMETHEUS_DIR / "prometheus.yml")
    assert config["rule_files"] == ["alerts.yml"]  # relative to the config: /etc/prometheus/alerts.yml
    assert config["global"]["external_labels"]["runbook_base"].startswith("https://")

    # The token: a compose secret from CHUONG_METRICS_TOKEN, read by every scrape job.
    (secret,) = prometheus["secrets"]
    assert compose["secrets"][secret] == {"environment": "CHUONG_METRICS_TOKEN"}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"chuong-api", "chuong-worker"}
    for job in jobs.values():
        assert job["authorization"] == {"type": "Bearer", "credentials_file": f"/run/secrets/{secret}"}

    # The targets are the compose services, on the ports they listen on.
    (api_target,) = jobs["chuong-api"]["static_configs"][0]["targets"]
    host, port = api_target.split(":")
    assert services[host]["ports"] == [f"{port}:{port}"]
    (workers,) = jobs["chuong-worker"]["dns_sd_configs"]
    assert set(workers["names"]) == {"worker", "worker-urgent", "worker-bulk"}
    for name in workers["names"]:
        assert services[name]["expose"] == [str(workers["port"])]
        assert services[name]["command"][:2] == ["chuong", "worker"]
    assert compose["x-app"]["environment"]["CHUONG_WORKER_METRICS_HOST"] == "0.0.0.0"  # noqa: S104

    (alertmanager,) = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanager == "alertmanager:9093" and "alertmanager" in services
    assert _mounts(services["alertmanager"])["/etc/alertmanager"] == ALERTMANAGER_CONFIG.parent


def test_promtool_accepts_prometheus_yml_with_the_shipped_rules(tmp_path: Path) -> None:
    syntax = _tool("promtool", "check", "config", "--syntax-only", "prometheus.yml", cwd=PROMETHEUS_DIR)
    assert syntax.returncode == 0, syntax.stdout + syntax.stderr
    # The full check also reads the token file and loads alerts.yml: a copy of both, where only
    # the token's path (a compose secret inside the container) points at a file that exists here.
    token = tmp_path / "token"
    token.write_text("a-token", encoding="utf-8")
    text = (PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8")
    copied = text.replace("/run/secrets/chuong_metrics_token", str(token))
    assert copied.count(str(token)) == 2
    (tmp_path / "prometheus.yml").write_text(copied, encoding="utf-8")
    shutil.copy(PROMETHEUS_DIR / "alerts.yml", tmp_path / "alerts.yml")
    done = _tool("promtool", "check", "config", "prometheus.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 19 rules found" in done.stdout, done.stdout


def test_amtool_accepts_alertmanager_yml() -> None:
    done = _tool("amtool", "check-config", str(ALERTMANAGER_CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr


def _alerts() -> list[dict[str, Any]]:
    rules = _yaml(PROMETHEUS_DIR / "alerts.yml")
    return [rule for group in rules["groups"] for rule in group["rules"]]


@pytest.mark.parametrize("rule", _alerts(), ids=lambda rule: rule["alert"])
def test_each_alert_reaches_the_people_its_severity_names(rule: dict[str, Any]) -> None:
    severity = rule["labels"]["severity"]
    expected = [BY_SEVERITY[severity]]
    if rule["alert"] in SECURITY_ALERTS:
        expected.insert(0, "security-officer")
    done = _tool(
        "amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}",
        f"--verify.receivers={','.join(expected)}", f"alertname={rule['alert']}", f"severity={severity}",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_wrong_route_is_caught() -> None:
    done = _tool(
        "amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}",
        "--verify.receivers=operators", "alertname=ChuongApiDown", "severity=critical",
    )  # fmt: skip
    assert done.returncode != 0


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    services = _compose()["services"]
    grafana = services["grafana"]
    mounts = _mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == GRAFANA_DIR / "provisioning"
    (datasource,) = _yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090" and "prometheus" in services
    (provider,) = _yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "chuong.yml")["providers"]
    dashboards = [target for target, source in mounts.items() if source == GRAFANA_DIR / "chuong.json"]
    assert [str(Path(target).parent) for target in dashboards] == [provider["options"]["path"]]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert _compose()["secrets"]["grafana_admin_password"] == {"environment": "GRAFANA_ADMIN_PASSWORD"}
