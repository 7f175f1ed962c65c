"""docs/app-integration.md is what the mobile teams build against: every route it names exists
in the OpenAPI document with that method, and every error code it tells them to handle is one
the service can answer. A renamed route or code fails here, not in an app release."""

from __future__ import annotations

import re
from pathlib import Path

from cli.asgi import create_app

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "app-integration.md").read_text(encoding="utf-8")
# Where error codes are defined: the exception classes, the handlers and the services raising them.
SOURCES = "\n".join(
    path.read_text(encoding="utf-8")
    for package in ("api", "auth", "core", "devices", "inbox", "notifications", "console")
    for path in (ROOT / package).rglob("*.py")
)


def _paths() -> dict[str, set[str]]:
    spec = create_app(manage_resources=False).openapi()
    return {path: {method.upper() for method in item} for path, item in spec["paths"].items()}


def _pattern(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")


def test_every_route_the_guide_names_exists_with_its_method():
    paths = {_pattern(path): methods for path, methods in _paths().items()}
    named = set(re.findall(r"\b(GET|POST|PUT|PATCH|DELETE)\s+(/v1/[A-Za-z0-9_/{}.-]*[A-Za-z0-9}])", DOC))
    assert len(named) >= 15, named  # the guide's routes were found at all
    missing = []
    for method, path in sorted(named):
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        if not any(pattern.match(concrete) and method in methods for pattern, methods in paths.items()):
            missing.append(f"{method} {path}")
    assert missing == []


def test_every_error_code_the_guide_names_can_be_answered():
    table = DOC.split("| status | typical `code` |", 1)[1].split("\n\n", 1)[0]
    rows = [row.split("|") for row in table.splitlines() if re.match(r"^\| \d{3}", row)]
    codes = {code for cells in rows for code in re.findall(r"`([a-z_]+)`", cells[2])}
    assert len(codes) >= 20, codes
    unknown = sorted(code for code in codes if f'"{code}"' not in SOURCES)
    assert unknown == []
