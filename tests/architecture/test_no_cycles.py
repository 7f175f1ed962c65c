"""Dependencies that run one way (issue 13 item 2): inbox depends on notifications, never the
reverse, and no import cycle runs between the modules and sub-packages of any package.

Each contract is checked as pyproject.toml spells it, against a small tree of stand-in packages
(every root package of the config, empty but for the modules a case needs): a violation must
break it, and the allowed shape must keep it. Imports inside functions count, as in the real
check.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.architecture.planted import contract, importlinter, kept, lint

# --- notifications never imports inbox -------------------------------------------------------


def test_the_contract_forbids_notifications_every_import_of_inbox() -> None:
    found = contract("inbox-depends-on-notifications")

    assert found["type"] == "forbidden"
    assert (found["source_modules"], found["forbidden_modules"]) == (["notifications"], ["inbox"])
    # Indirect chains (notifications → another package → inbox) count too; no import is excused.
    assert not found.get("allow_indirect_imports", False)
    assert not found.get("ignore_imports")


def test_inbox_may_import_notifications(tmp_path: Path) -> None:
    modules = {
        "notifications.models": "",
        "inbox.fanout": "from notifications import models\n",
    }

    assert kept(lint(tmp_path, contract("inbox-depends-on-notifications"), modules))


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
    result = lint(tmp_path, contract("inbox-depends-on-notifications"), modules)

    assert not kept(result)
    assert "notifications is not allowed to import inbox" in result.stdout


# --- no cycle inside any package -------------------------------------------------------------


def test_the_acyclic_contract_covers_every_package_at_every_depth() -> None:
    found = contract("no-cycles-inside-packages")

    assert found["type"] == "acyclic_siblings"
    # A package added to the analysed roots but not here could grow cycles unseen.
    assert set(found["ancestors"]) == set(importlinter()["root_packages"])
    assert not found.get("skip_descendants")
    assert not found.get("ignore_imports")
    # The default depth (10) is deeper than any package nests.
    assert found.get("depth", 10) >= 10


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

    assert kept(lint(tmp_path, contract("no-cycles-inside-packages"), modules))


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
    result = lint(tmp_path, contract("no-cycles-inside-packages"), modules)

    assert not kept(result)
    assert f"No cycles are allowed in {package}." in result.stdout
