"""The contracts that keep the transports apart and the layers in order exist, and they bite.

The app that serves the API and the console is assembled in the outer layer (cli/asgi.py), so api
never imports console; the console reuses only the API's request dependencies (api.deps), never a
route function; and the whole picture is one `layers` contract: cli above console above api and
workers, above the domains (in the order they depend on each other), above core (issue 13 item 3).

"Bite" is shown on a scratch tree of stub packages with the real root names: the contract, copied
from pyproject.toml, is run by lint-imports against one planted import at a time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.architecture.planted import ROOT, config, contract, imports, kept, lint

LAYERS = [
    "cli",
    "console",
    "api | workers",
    "news | tracking",
    "inbox",
    "notifications",
    "devices",
    "auth",
    "core",
]


def test_api_may_not_import_the_console() -> None:
    found = contract("api-imports-no-console")

    assert found["type"] == "forbidden"
    assert (found["source_modules"], found["forbidden_modules"]) == (["api"], ["console"])


def test_the_console_may_import_nothing_of_api_but_its_request_dependencies() -> None:
    # Every module and subpackage of api/ but deps.py and sse.py (the request dependencies and the
    # SSE response, which the console's delivery view streams through too): a new api module is
    # forbidden until listed.
    api_modules = {
        f"api.{path.stem}"
        for path in (ROOT / "api").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").exists()
    }
    found = contract("console-uses-only-api-deps")

    assert found["source_modules"] == ["console"]
    assert "api.deps" in api_modules
    assert set(found["forbidden_modules"]) == api_modules - {"api.deps", "api.sse"}


def test_the_layers_run_from_the_outer_layer_down_to_core() -> None:
    settings = config()
    found = contract("layers")
    roots = set(settings["tool"]["importlinter"]["root_packages"])
    layered = [name.strip() for layer in found["layers"] for name in layer.split("|")]

    assert found["type"] == "layers"
    assert found["layers"] == LAYERS
    # Every shipped package has its place, once; the emulator is tooling (its own contract).
    assert sorted(layered) == sorted(roots - {"emulator"})


@pytest.mark.parametrize(
    ("contract_id", "planted"),
    [
        ("api-imports-no-console", [("api.app", "console.app")]),
        ("console-uses-only-api-deps", [("console.routes.signin", "api.routers.auth")]),
        ("console-uses-only-api-deps", [("console.app", "api.app")]),
        ("layers", [("api.app", "console.app")]),
        ("layers", [("api.app", "workers.queue")]),  # the transports are siblings
        ("layers", [("workers.jobs", "api.deps")]),
        ("layers", [("workers.jobs", "console.app")]),
        ("layers", [("notifications.service", "news.service")]),
        ("layers", [("news.service", "tracking.service")]),  # siblings
        ("layers", [("devices.service", "inbox.models")]),
        ("layers", [("auth.users", "devices.service")]),
        ("layers", [("core.db", "auth.models")]),
        ("layers", [("auth.cli", "cli.main")]),
    ],
)
def test_the_contract_breaks_on_a_planted_import(
    tmp_path: Path, contract_id: str, planted: list[tuple[str, str]]
) -> None:
    assert not kept(lint(tmp_path, contract(contract_id), imports(*planted)))


@pytest.mark.parametrize(
    ("contract_id", "planted"),
    [
        ("console-uses-only-api-deps", [("console.routes.signin", "api.deps")]),
        ("layers", [("cli.asgi", "api.app"), ("cli.asgi", "console.app"), ("cli.asgi", "workers.queue")]),
        ("layers", [("console.routes.news", "api.deps"), ("console.routes.news", "news.service")]),
        ("layers", [("workers.jobs", "tracking.sender"), ("tracking.sender", "notifications.service")]),
        ("layers", [("news.service", "inbox.fanout"), ("inbox.fanout", "notifications.models")]),
        ("layers", [("notifications.models", "devices.models"), ("devices.models", "auth.models")]),
        ("layers", [("auth.models", "core.db")]),
    ],
)
def test_the_contract_keeps_the_allowed_direction(
    tmp_path: Path, contract_id: str, planted: list[tuple[str, str]]
) -> None:
    assert kept(lint(tmp_path, contract(contract_id), imports(*planted)))
