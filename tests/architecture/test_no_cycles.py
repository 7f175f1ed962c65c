"""Dependencies that run one way (issue 13 item 2): inbox depends on notifications, never the
reverse, and no import cycle runs between the modules and sub-packages of any package.

Each contract is checked as pyproject.toml spells it, against a small tree of stand-in packages
(every root package of the config, empty but for the modules a case needs): a violation must
break it, and the allowed shape must keep it. Imports inside functions count, as in the real
check.
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


def _importlinter() -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return config["tool"]["importlinter"]


def _contract(contract_id: str) -> dict:
    [contract] = [c for c in _importlinter()["contracts"] if c["id"] == contract_id]
    return contract


def _toml(table: dict) -> str:
    # The contracts hold only strings, numbers, booleans and lists of them: JSON spells those
    # as TOML does.
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in table.items())


def _lint(tmp_path: Path, contract_id: str, modules: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the real contract ``contract_id`` over stand-in packages: every root package of the
    config, plus ``modules`` (dotted name → source)."""
    settings = {key: value for key, value in _importlinter().items() if key != "contracts"}
    for package in settings["root_packages"]:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for name, source in modules.items():
        *packages, module = name.split(".")
        folder = tmp_path.joinpath(*packages)
        for depth in range(1, len(packages) + 1):
            init = tmp_path.joinpath(*packages[:depth], "__init__.py")
            init.parent.mkdir(exist_ok=True)
            if not init.exists():
                init.write_text("")
        (folder / f"{module}.py").write_text(source)
    config = tmp_path / "contracts.toml"
    config.write_text(
        "[tool.importlinter]\n"
        + _toml(settings)
        + "\n[[tool.importlinter.contracts]]\n"
        + _toml(_contract(contract_id))
    )
    # Only the stand-ins are importable by name: the real packages are not on this path.
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run(  # noqa: S603 - the venv's own lint-imports
        [str(LINT_IMPORTS), "--no-cache", "--config", str(config)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _kept(result: subprocess.CompletedProcess[str]) -> bool:
    assert "Could not" not in result.stdout + result.stderr, result.stdout + result.stderr
    if result.returncode == 0:
        assert "1 kept, 0 broken" in result.stdout, result.stdout
        return True
    assert "0 kept, 1 broken" in result.stdout, result.stdout + result.stderr
    return False


# --- notifications never imports inbox -------------------------------------------------------


def test_the_contract_forbids_notifications_every_import_of_inbox() -> None:
    contract = _contract("inbox-depends-on-notifications")

    assert contract["type"] == "forbidden"
    assert (contract["source_modules"], contract["forbidden_modules"]) == (["notifications"], ["inbox"])
    # Indirect chains (notifications → another package → inbox) count too; no import is excused.
    assert not contract.get("allow_indirect_imports", False)
    assert not contract.get("ignore_imports")


def test_inbox_may_import_notifications(tmp_path: Path) -> None:
    modules = {
        "notifications.models": "",
        "inbox.fanout": "from notifications import models\n",
    }

    assert _kept(_lint(tmp_path, "inbox-depends-on-notifications", modules))


@pytest.mark.parametrize(
    "modules",
    [
        pytest.param(
            {"inbox.badges": "", "notifications.dispatch": "from inbox.badges import *\n"},
            id="module-level",
        ),
        pytest.param(
            {"inbox.fanout": "", "notifications.service": "def create():\n    from inbox import fanout\n"},
            id="inside-a-function",
        ),
        pytest.param(
            {
                "inbox.fanout": "",
                "tracking.bridge": "import inbox.fanout\n",
                "notifications.service": "import tracking.bridge\n",
            },
            id="through-another-package",
        ),
    ],
)
def test_notifications_importing_inbox_breaks_it(tmp_path: Path, modules: dict[str, str]) -> None:
    result = _lint(tmp_path, "inbox-depends-on-notifications", modules)

    assert not _kept(result)
    assert "notifications is not allowed to import inbox" in result.stdout


# --- no cycle inside any package -------------------------------------------------------------


def test_the_acyclic_contract_covers_every_package_at_every_depth() -> None:
    contract = _contract("no-cycles-inside-packages")

    assert contract["type"] == "acyclic_siblings"
    # A package added to the analysed roots but not here could grow cycles unseen.
    assert set(contract["ancestors"]) == set(_importlinter()["root_packages"])
    assert not contract.get("skip_descendants")
    assert not contract.get("ignore_imports")
    # The default depth (10) is deeper than any package nests.
    assert contract.get("depth", 10) >= 10


def test_modules_that_import_one_way_keep_it(tmp_path: Path) -> None:
    modules = {
        "notifications.states": "",
        "notifications.channels": "",
        "notifications.fanout": "from notifications import states, service\n",
        "notifications.service": "from notifications import outbox\n",
        "notifications.outbox": "from notifications import channels\n",
        "notifications.stats": "from notifications import channels, states\n",
        "notifications.providers.sms": "",
        "notifications.providers.sms_http": "from notifications.providers import sms\n",
        "notifications.providers.sms_registry": "from notifications.providers import sms, sms_http\n",
    }

    assert _kept(_lint(tmp_path, "no-cycles-inside-packages", modules))


@pytest.mark.parametrize(
    ("modules", "package"),
    [
        pytest.param(
            {
                "notifications.fanout": "from notifications import service\n",
                "notifications.service": "from notifications import outbox\n",
                "notifications.outbox": "def record():\n    from notifications import stats\n",
                "notifications.stats": "from notifications import fanout\n",
            },
            "notifications",
            id="a-circle-of-four-modules",
        ),
        pytest.param(
            {
                "notifications.providers.sms": (
                    "def build():\n    from notifications.providers import sms_http\n"
                ),
                "notifications.providers.sms_http": "from notifications.providers import sms\n",
            },
            "notifications.providers",
            id="two-modules-of-a-sub-package",
        ),
        pytest.param(
            {
                "notifications.sms.sender": "from notifications.providers import sms\n",
                "notifications.providers.sms": "from notifications.sms import sender\n",
            },
            "notifications",
            id="across-two-sub-packages",
        ),
        pytest.param(
            {
                "core.jobs": "from core import pubsub\n",
                "core.pubsub": "from core import jobs\n",
            },
            "core",
            id="in-another-package",
        ),
    ],
)
def test_an_import_cycle_breaks_it(tmp_path: Path, modules: dict[str, str], package: str) -> None:
    result = _lint(tmp_path, "no-cycles-inside-packages", modules)

    assert not _kept(result)
    assert f"No cycles are allowed in {package}." in result.stdout
