"""The wheel `pip install .` would install, built from a copy of the sources so that the build
leaves no `build/` or `*.egg-info` in the working tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP = shutil.ignore_patterns(
    ".venv", ".git", ".run", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", ".env"
)


def build_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source") / "chuong"
    shutil.copytree(ROOT, source, ignore=SKIP)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(  # noqa: S603 - pip of the test interpreter
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(source)],
        check=True,
        timeout=600,
    )
    [built] = out.glob("chuong-*.whl")
    return built
