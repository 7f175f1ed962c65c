"""The import-linter contracts of pyproject.toml ([tool.importlinter]) hold.

Shipped code never imports the provider emulator (dev and test tooling) or the emulator's own
dependencies (issue 12 item 8). core is the shared kernel and imports no other package; the
composition (the chuong command, the model registry Alembic reads) is the outer layer cli/, which
no package imports; devices depend on auth, never the reverse (issue 13 item 3). Further contracts
go into the same config.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _contract(config: dict, contract_id: str) -> dict:
    [contract] = [c for c in config["tool"]["importlinter"]["contracts"] if c["id"] == contract_id]
    return contract


def test_every_import_contract_is_kept() -> None:
    result = subprocess.run(  # noqa: S603 - the venv's own lint-imports
        [str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_the_emulator_contract_covers_every_shipped_package() -> None:
    # A package added to the distribution but not to the contract would be free to import it.
    config = _config()
    shipped = {pattern.rstrip("*") for pattern in config["tool"]["setuptools"]["packages"]["find"]["include"]}
    contract = _contract(config, "no-emulator-in-shipped-code")

    assert set(contract["source_modules"]) == shipped
    assert {"emulator", "trustme", "h2"} <= set(contract["forbidden_modules"])


def test_core_may_import_no_other_package() -> None:
    # A package added to the analysed roots but not to this contract would be free for core to import.
    config = _config()
    roots = set(config["tool"]["importlinter"]["root_packages"])
    contract = _contract(config, "core-imports-no-domain")

    assert contract["source_modules"] == ["core"]
    assert set(contract["forbidden_modules"]) == roots - {"core"}


def test_no_package_may_import_the_outer_layer() -> None:
    config = _config()
    roots = set(config["tool"]["importlinter"]["root_packages"])
    contract = _contract(config, "nothing-imports-the-cli")

    assert contract["forbidden_modules"] == ["cli"]
    assert set(contract["source_modules"]) == roots - {"cli"}


def test_auth_may_not_import_devices() -> None:
    contract = _contract(_config(), "devices-depend-on-auth")

    assert (contract["source_modules"], contract["forbidden_modules"]) == (["auth"], ["devices"])
