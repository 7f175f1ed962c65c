"""The import-linter contracts of pyproject.toml ([tool.importlinter]) hold.

First contract: shipped code never imports the provider emulator (dev and test tooling) or the
emulator's own dependencies (issue 12 item 8). Further contracts go into the same config.
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
    [contract] = [
        c for c in config["tool"]["importlinter"]["contracts"] if c["id"] == "no-emulator-in-shipped-code"
    ]

    assert set(contract["source_modules"]) == shipped
    assert {"emulator", "trustme", "h2"} <= set(contract["forbidden_modules"])
