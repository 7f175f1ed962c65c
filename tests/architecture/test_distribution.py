"""What `pip install .` ships: the built wheel holds no emulator and does not require its
dependencies (issue 12 item 8). The wheel is built from a copy of the sources, so that the
build leaves no `build/` or `*.egg-info` in the working tree."""

from __future__ import annotations

import email
import zipfile
from pathlib import Path

import pytest

from tests.support.wheel import build_wheel

# Its module fixture (built once) is expensive: under pytest-xdist, its tests share one worker.
pytestmark = pytest.mark.xdist_group("distribution")

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {
    "api",
    "auth",
    "cli",
    "console",
    "core",
    "devices",
    "inbox",
    "news",
    "notifications",
    "tracking",
    "workers",
}
NOT_SHIPPED = {"emulator", "tests", "bench", "scripts", "docs"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory)


def test_the_wheel_ships_the_service_packages_and_no_emulator(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(".dist-info")}

    assert top_level == SHIPPED
    assert not top_level & NOT_SHIPPED
    assert not [name for name in names if "emulator" in name.split("/")[0]]


def test_the_wheel_ships_the_catalogues_of_every_language(wheel: Path) -> None:
    # Compiled in memory from the .po files at run time (core/i18n.py, console/i18n.py).
    names = set(zipfile.ZipFile(wheel).namelist())
    for language in ("vi", "en", "zh", "fr", "es", "ru"):
        assert f"core/locales/{language}/LC_MESSAGES/messages.po" in names
    for language in ("vi", "en"):
        assert f"console/locales/{language}/LC_MESSAGES/messages.po" in names


def test_the_wheel_ships_the_migrations_that_chuong_migrate_runs(wheel: Path) -> None:
    # Found through the package (cli/migration_config.py: "cli:migrations"), no alembic.ini.
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"cli/migrations/env.py", "cli/migrations/script.py.mako"} <= names
    shipped = {n.rsplit("/", 1)[1] for n in names if n.startswith("cli/migrations/versions/")}
    in_tree = {p.name for p in (ROOT / "cli" / "migrations" / "versions").glob("*.py")}
    assert shipped == in_tree and in_tree


def test_the_runtime_requirements_leave_out_the_emulators_dependencies(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        [metadata_name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(metadata_name))
    requirements = metadata.get_all("Requires-Dist") or []
    runtime = {
        r.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip()
        for r in requirements
        if "extra ==" not in r
    }
    dev = {
        r.split(";")[0].split(">")[0].split("<")[0].split("=")[0].strip()
        for r in requirements
        if 'extra == "dev"' in r
    }

    assert not runtime & {"trustme", "h2"}
    assert {"trustme", "h2", "import-linter"} <= dev
    assert {"firebase-admin", "aioapns", "fastapi", "arq"} <= runtime
