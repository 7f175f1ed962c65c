"""The contracts that keep the transports apart and the layers in order exist, and they bite.

The app that serves the API and the console is assembled in the outer layer (cli/asgi.py), so api
never imports console; the console reuses only the API's request dependencies (api.deps), never a
route function; and the whole picture is one `layers` contract: cli above console above api and
workers, above the domains (in the order they depend on each other), above core (issue 13 item 3).

"Bite" is shown on a scratch tree of stub packages with the real root names: the contract, copied
from pyproject.toml, is run by lint-imports against one planted import at a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

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


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _contract(contract_id: str) -> dict:
    [contract] = [c for c in _config()["tool"]["importlinter"]["contracts"] if c["id"] == contract_id]
    return contract


def _toml_value(value: object) -> str:
    # The contracts hold only strings, lists of strings and booleans, which JSON spells as TOML does.
    return json.dumps(value)


def _module(tmp_path: Path, dotted: str) -> Path:
    *packages, name = dotted.split(".")
    for depth in range(1, len(packages) + 1):
        package = tmp_path.joinpath(*packages[:depth])
        package.mkdir(exist_ok=True)
        (package / "__init__.py").touch()
    return tmp_path.joinpath(*packages) / f"{name}.py"


def _lint(tmp_path: Path, contract: dict, imports: list[tuple[str, str]]) -> subprocess.CompletedProcess[str]:
    """Run lint-imports with ``contract`` over stub root packages holding only ``imports``
    (importer, imported), each module created for the occasion."""
    roots = _config()["tool"]["importlinter"]["root_packages"]
    # Every module a contract names must exist (the roots, and forbidden ones such as api.routers).
    named = [*roots, *contract.get("source_modules", []), *contract.get("forbidden_modules", [])]
    for name in named:
        _module(tmp_path, f"{name}.__init__").touch()
    for importer, imported in imports:
        _module(tmp_path, imported).touch()
        target = _module(tmp_path, importer)
        target.write_text(
            (target.read_text(encoding="utf-8") if target.exists() else "") + f"import {imported}\n",
            encoding="utf-8",
        )
    # The real tree's exceptions (ignore_imports) would match nothing here, which lint-imports
    # reports as an error of its own.
    fields = {key: value for key, value in contract.items() if key != "ignore_imports"}
    lines = ["[tool.importlinter]", f"root_packages = {_toml_value(roots)}", ""]
    lines.append("[[tool.importlinter.contracts]]")
    lines += [f"{key} = {_toml_value(value)}" for key, value in fields.items()]
    config = tmp_path / "importlinter.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # The scratch packages come before the installed (editable) ones, whose finder runs last.
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run(  # noqa: S603 - the venv's own lint-imports
        [str(LINT_IMPORTS), str(config), "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _kept(result: subprocess.CompletedProcess[str]) -> bool:
    if result.returncode == 0 and "1 kept, 0 broken" in result.stdout:
        return True
    assert "0 kept, 1 broken" in result.stdout, result.stdout[-3000:] + result.stderr[-2000:]
    return False


def test_api_may_not_import_the_console() -> None:
    contract = _contract("api-imports-no-console")

    assert contract["type"] == "forbidden"
    assert (contract["source_modules"], contract["forbidden_modules"]) == (["api"], ["console"])


def test_the_console_may_import_nothing_of_api_but_its_request_dependencies() -> None:
    # Every module and subpackage of api/ but deps.py and sse.py (the request dependencies and the
    # SSE response, which the console's delivery view streams through too): a new api module is
    # forbidden until listed.
    api_modules = {
        f"api.{path.stem}"
        for path in (ROOT / "api").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").exists()
    }
    contract = _contract("console-uses-only-api-deps")

    assert contract["source_modules"] == ["console"]
    assert "api.deps" in api_modules
    assert set(contract["forbidden_modules"]) == api_modules - {"api.deps", "api.sse"}


def test_the_layers_run_from_the_outer_layer_down_to_core() -> None:
    config = _config()
    contract = _contract("layers")
    roots = set(config["tool"]["importlinter"]["root_packages"])
    layered = [name.strip() for layer in contract["layers"] for name in layer.split("|")]

    assert contract["type"] == "layers"
    assert contract["layers"] == LAYERS
    # Every shipped package has its place, once; the emulator is tooling (its own contract).
    assert sorted(layered) == sorted(roots - {"emulator"})


@pytest.mark.parametrize(
    ("contract_id", "imports"),
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
    tmp_path: Path, contract_id: str, imports: list[tuple[str, str]]
) -> None:
    assert not _kept(_lint(tmp_path, _contract(contract_id), imports))


@pytest.mark.parametrize(
    ("contract_id", "imports"),
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
    tmp_path: Path, contract_id: str, imports: list[tuple[str, str]]
) -> None:
    assert _kept(_lint(tmp_path, _contract(contract_id), imports))
