"""deploy/production.env.example names every setting of core/config.py, and what it shows is true
(issue 14, item 1): every ``Settings`` field appears as a ``CHUONG_<NAME>=`` line (the required
ones uncommented), it names nothing else but a few CLI options, the defaults its commented-out
lines show are the real ones, and the values it sets are accepted (and pass the production
start-up checks).

Values are read the way the service reads them: the lines go into an env file that ``Settings``
loads, so lists (comma-separated) and JSON objects are compared as parsed, not as text.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from core.config import Settings
from core.production import is_production, production_problems

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "production.env.example"
PREFIX = "CHUONG_"
# Options of CLI commands read from the environment (typer ``envvar=``), not service settings.
CLI_OPTIONS = frozenset(
    {
        "CHUONG_MIGRATION_DATABASE_URL",  # chuong migrate
        "CHUONG_BACKUP_STANZA",  # chuong backup drill ...
        "CHUONG_BACKUP_PGBACKREST_CONFIG",
        "CHUONG_BACKUP_OS_USER",
        "CHUONG_BACKUP_SCRATCH_DIR",
        "CHUONG_BACKUP_PG_BINDIR",
    }
)
# A setting line, commented out ("# CHUONG_X=default") or not ("CHUONG_X=value").
ASSIGNMENT = re.compile(r"^(?P<comment>#\s?)?(?P<name>CHUONG_[A-Z0-9_]+)=(?P<value>.*)$")
# Any mention, in a setting line or in prose.
MENTION = re.compile(r"\bCHUONG_[A-Z0-9_]+")
# The setting a production start-up problem is about ("CHUONG_X: ...", "CHUONG_X[kid]: ...").
PROBLEM_SETTING = re.compile(r"^(CHUONG_[A-Z0-9_]+)")


@dataclass(frozen=True)
class Line:
    name: str
    value: str
    commented: bool

    @property
    def field(self) -> str:
        return self.name.removeprefix(PREFIX).lower()


def example_lines() -> list[Line]:
    lines = []
    for text in EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = ASSIGNMENT.match(text)
        if match:
            lines.append(Line(match["name"], match["value"], commented=match["comment"] is not None))
    return lines


def env_name(field: str) -> str:
    return PREFIX + field.upper()


def is_placeholder(value: str) -> bool:
    """Left for the operator: empty, "<password>"-style, a key id of X's, or a secret file that
    exists only on the production host."""
    return not value or "<" in value or "XXXX" in value or value.startswith("/run/secrets/")


def generated_secrets() -> dict[str, str]:
    """Values for the required secrets, which the example leaves empty."""
    return {
        "CHUONG_FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "CHUONG_AUDIT_HMAC_KEY": secrets.token_urlsafe(48),
        "CHUONG_JWT_KEYS": json.dumps({"k1": secrets.token_urlsafe(48)}),
        "CHUONG_JWT_ACTIVE_KID": "k1",
        "CHUONG_TOKEN_PEPPER": secrets.token_urlsafe(48),
    }


def load(env_file: Path) -> Settings:
    return Settings(_env_file=env_file, _env_file_encoding="utf-8")


@pytest.fixture(autouse=True)
def _no_chuong_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The test session sets CHUONG_* variables (tests/conftest.py); environment variables win
    # over the env file, so they would hide what the example says.
    for name in [name for name in os.environ if name.upper().startswith(PREFIX)]:
        monkeypatch.delenv(name)


def test_every_setting_is_named() -> None:
    named = {line.name for line in example_lines()}
    missing = sorted(env_name(field) for field in Settings.model_fields if env_name(field) not in named)
    assert not missing, f"{EXAMPLE.name} does not name these settings of core/config.py: {missing}"


def test_required_settings_are_not_commented_out() -> None:
    uncommented = {line.name for line in example_lines() if not line.commented}
    required = [env_name(f) for f, info in Settings.model_fields.items() if info.is_required()]
    hidden = sorted(name for name in required if name not in uncommented)
    assert not hidden, f"required settings commented out or missing: {hidden}"


def test_each_setting_is_named_once() -> None:
    names = [line.name for line in example_lines()]
    twice = sorted({name for name in names if names.count(name) > 1})
    assert not twice, f"named more than once (which line wins is not obvious): {twice}"


def test_it_names_nothing_else() -> None:
    fields = {env_name(field) for field in Settings.model_fields}
    mentioned = {name.rstrip("_") for name in MENTION.findall(EXAMPLE.read_text(encoding="utf-8"))}
    unknown = sorted(mentioned - fields - CLI_OPTIONS)
    assert not unknown, f"neither a setting of core/config.py nor a CLI option: {unknown}"


def test_commented_defaults_are_the_real_defaults(tmp_path: Path) -> None:
    """Every type is compared, lists and JSON objects too: the line is parsed by Settings itself.
    An empty commented value means "unset": the default must then be None or empty."""
    fields = Settings.model_fields
    # A required setting commented out is test_required_settings_are_not_commented_out's failure.
    shown = [
        line
        for line in example_lines()
        if line.commented and line.field in fields and not fields[line.field].is_required()
    ]
    assert shown
    env_file = tmp_path / "defaults.env"
    env_file.write_text(
        "".join(f"{name}={value}\n" for name, value in generated_secrets().items())
        + "".join(f"{line.name}={line.value}\n" for line in shown if line.value),
        encoding="utf-8",
    )
    settings = load(env_file)
    wrong: dict[str, tuple[Any, Any]] = {}
    for line in shown:
        default = fields[line.field].get_default(call_default_factory=True)
        if not line.value:
            if default not in (None, [], {}):
                wrong[line.name] = ("<empty>", default)
        elif getattr(settings, line.field) != default:
            wrong[line.name] = (getattr(settings, line.field), default)
    assert not wrong, f"commented-out lines whose value is not the default (shown, real): {wrong}"


def test_defaults_left_alone_pass_the_production_checks(tmp_path: Path) -> None:
    """ "Commented-out lines show defaults" tells an operator they may be left alone: production
    must not refuse any of those defaults."""
    left_alone = {line.name for line in example_lines() if line.commented}
    env_file = tmp_path / "defaults.env"
    env_file.write_text(
        "".join(f"{name}={value}\n" for name, value in generated_secrets().items())
        + "CHUONG_ENVIRONMENT=production\n",
        encoding="utf-8",
    )
    problems = production_problems(load(env_file))
    refused = [p for p in problems if (m := PROBLEM_SETTING.match(p)) and m[1] in left_alone]
    assert not refused, refused


def test_the_values_it_sets_are_accepted() -> None:
    """The file loads as it is, and what it sets for real (not a placeholder) is production-fit:
    CHUONG_ENVIRONMENT=production turns the checks on, the log settings pass them."""
    settings = load(EXAMPLE)
    assert is_production(settings)
    fixed = {
        line.name
        for line in example_lines()
        if not line.commented and line.field in Settings.model_fields and not is_placeholder(line.value)
    }
    assert {"CHUONG_ENVIRONMENT", "CHUONG_LOG_LEVEL", "CHUONG_LOG_JSON"} <= fixed
    assert settings.log_json is True
    problems = production_problems(settings)
    refused = [p for p in problems if (m := PROBLEM_SETTING.match(p)) and m[1] in fixed]
    assert not refused, refused
