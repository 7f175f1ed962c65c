"""core/progress.py: a bar on a terminal, nothing at all anywhere else (issue 14)."""

from __future__ import annotations

import io
import os
import pty
from collections.abc import Iterator
from typing import TextIO

import pytest

from core.progress import QUIET, shown_on, track


@pytest.fixture
def terminal() -> Iterator[tuple[TextIO, int]]:
    master, slave = pty.openpty()
    stream = os.fdopen(slave, "w", encoding="utf-8")
    try:
        yield stream, master
    finally:
        stream.close()
        os.close(master)


def _read(master: int) -> str:
    os.set_blocking(master, False)
    chunks = []
    while True:
        try:
            chunks.append(os.read(master, 65536))
        except BlockingIOError:
            return b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize(
    ("ci", "term", "shown"),
    [
        (None, "xterm", True),
        ("", "xterm", True),
        ("false", "xterm", True),
        ("0", "xterm", True),
        ("true", "xterm", False),
        ("1", "xterm", False),
        ("yes", "xterm", False),
        (None, "dumb", False),
    ],
)
def test_shown_on_a_terminal_outside_ci_only(
    terminal: tuple[TextIO, int], monkeypatch: pytest.MonkeyPatch, ci: str | None, term: str, shown: bool
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("TERM", term)
    assert shown_on(terminal[0]) is shown


def test_never_on_a_pipe_or_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert not shown_on(io.StringIO())
    with track("working", total=3, stream=io.StringIO()) as tracker:
        assert tracker is QUIET and not tracker.enabled
        tracker.step("next step", total=1)
        tracker.completed(1)  # ignored, like every call of the quiet tracker


def test_a_bar_is_drawn_and_then_removed(
    terminal: tuple[TextIO, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    stream, master = terminal
    with track("verifying", total=4, stream=stream) as tracker:
        assert tracker.enabled
        tracker.completed(4)
        tracker.step("counting tables", total=2)
        tracker.update(completed=1)
    drawn = _read(master)
    assert "verifying" in drawn and "counting tables" in drawn
    # transient: the last thing written erases the bar's line, the terminal is left as it was
    assert drawn.rstrip().endswith("\x1b[2K")
