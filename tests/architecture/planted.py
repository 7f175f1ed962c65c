"""The harness of the architecture tests: read the contracts of pyproject.toml, and run one of
them with lint-imports over stand-in packages holding planted imports, to show it bites."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def config() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def importlinter() -> dict[str, Any]:
    settings: dict[str, Any] = config()["tool"]["importlinter"]
    return settings


def contract(contract_id: str) -> dict[str, Any]:
    [found] = [c for c in importlinter()["contracts"] if c["id"] == contract_id]
    return found


def _toml(table: dict[str, Any]) -> str:
    # The contracts hold only strings, numbers, booleans and lists of them: JSON spells those as
    # TOML does.
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in table.items())


def _module(tmp_path: Path, dotted: str) -> Path:
    *packages, name = dotted.split(".")
    for depth in range(1, len(packages) + 1):
        package = tmp_path.joinpath(*packages[:depth])
        package.mkdir(exist_ok=True)
        (package / "__init__.py").touch()
    return tmp_path.joinpath(*packages) / f"{name}.py"


def lint(
    tmp_path: Path, checked: dict[str, Any], modules: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run the contract ``checked`` over stand-ins: every root package of the config, every module
    the contract names, and ``modules`` (dotted name → source)."""
    settings = {key: value for key, value in importlinter().items() if key != "contracts"}
    named = [
        *settings["root_packages"],
        *checked.get("source_modules", []),
        *checked.get("forbidden_modules", []),
    ]
    for name in named:
        _module(tmp_path, f"{name}.__init__").touch()
    for name, source in modules.items():
        target = _module(tmp_path, name)
        target.write_text((target.read_text(encoding="utf-8") if target.exists() else "") + source)
    # The real tree's exceptions (ignore_imports) would match nothing here, which lint-imports
    # reports as an error of its own.
    fields = {key: value for key, value in checked.items() if key != "ignore_imports"}
    path = tmp_path / "contracts.toml"
    path.write_text(
        "[tool.importlinter]\n" + _toml(settings) + "\n[[tool.importlinter.contracts]]\n" + _toml(fields),
        encoding="utf-8",
    )
    # Only the stand-ins are importable by name: they come before the editable install's finder.
    return subprocess.run(  # noqa: S603 - the venv's own lint-imports
        [str(LINT_IMPORTS), "--no-cache", "--config", str(path)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def imports(*pairs: tuple[str, str]) -> dict[str, str]:
    """(importer, imported) pairs as modules: each importer imports its targets, each target exists."""
    modules: dict[str, str] = {}
    for importer, imported in pairs:
        modules.setdefault(imported, "")
        modules[importer] = modules.get(importer, "") + f"import {imported}\n"
    return modules


def kept(result: subprocess.CompletedProcess[str]) -> bool:
    output = result.stdout + result.stderr
    assert "Could not" not in output, output[-4000:]
    if result.returncode == 0:
        assert "1 kept, 0 broken" in result.stdout, result.stdout
        return True
    assert "0 kept, 1 broken" in result.stdout, output[-4000:]
    return False
