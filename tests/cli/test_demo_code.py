"""`chuong demo code SECRET`, the README's authenticator in the shell: the current code, or a
clear error for something that is not a TOTP secret (an empty variable in a pasted command)."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from auth.totp import new_secret
from cli.main import app


def test_prints_the_current_code_of_a_secret() -> None:
    done = CliRunner().invoke(app, ["demo", "code", new_secret()])
    assert done.exit_code == 0
    assert re.fullmatch(r"\d{6}\n", done.stdout)


def test_refuses_what_is_not_a_secret_without_a_traceback() -> None:
    for not_a_secret in ("", "not base32!", "ABCD"):
        done = CliRunner().invoke(app, ["demo", "code", not_a_secret])
        assert done.exit_code == 2, not_a_secret
        assert "not a TOTP secret" in done.stderr
        assert "Traceback" not in done.output
