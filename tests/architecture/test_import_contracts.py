"""The import-linter contracts of pyproject.toml ([tool.importlinter]) hold.

Shipped code never imports the provider emulator (dev and test tooling) or the emulator's own
dependencies (issue 12 item 8). core is the shared kernel and imports no other package; the
composition (the chuong command, the model registry Alembic reads) is the outer layer cli/, which
no package imports; devices depend on auth, never the reverse (issue 13 item 3). Further contracts
go into the same config.
"""

from __future__ import annotations

import subprocess

from tests.architecture.planted import LINT_IMPORTS, ROOT, config, contract


def test_every_import_contract_is_kept() -> None:
    result = subprocess.run(  # noqa: S603 - the venv's own lint-imports
        [str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_the_emulator_contract_covers_every_shipped_package() -> None:
    # A package added to the distribution but not to the contract would be free to import it.
    settings = config()
    included = settings["tool"]["setuptools"]["packages"]["find"]["include"]
    shipped = {pattern.rstrip("*") for pattern in included}
    found = contract("no-emulator-in-shipped-code")

    assert set(found["source_modules"]) == shipped
    assert {"emulator", "trustme", "h2"} <= set(found["forbidden_modules"])


def test_core_may_import_no_other_package() -> None:
    # A package added to the analysed roots but not to this contract would be free for core to import.
    settings = config()
    roots = set(settings["tool"]["importlinter"]["root_packages"])
    found = contract("core-imports-no-domain")

    assert found["source_modules"] == ["core"]
    assert set(found["forbidden_modules"]) == roots - {"core"}


def test_no_package_may_import_the_outer_layer() -> None:
    settings = config()
    roots = set(settings["tool"]["importlinter"]["root_packages"])
    found = contract("nothing-imports-the-cli")

    assert found["forbidden_modules"] == ["cli"]
    assert set(found["source_modules"]) == roots - {"cli"}


def test_auth_may_not_import_devices() -> None:
    found = contract("devices-depend-on-auth")

    assert (found["source_modules"], found["forbidden_modules"]) == (["auth"], ["devices"])
