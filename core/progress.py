"""Progress of long command-line work (audit verification, restore drills, purges), on a terminal
only.

A bar or a spinner goes to stderr when stderr is a terminal and the run is not in CI; it is
removed when the work ends. Anywhere else (a pipe, cron, a log collector, CI, the tests that parse
the output) nothing at all is written, so the commands' output stays byte for byte what it was.
Rich draws it (typer's own dependency) from its own refresh thread, so asyncio code reports
progress with a plain call.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text


def shown_on(stream: TextIO) -> bool:
    """Progress is for a person watching a terminal: never in CI (``CI`` set, as CI services do),
    on a dumb terminal, or when the stream is a pipe or a file."""
    in_ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return stream.isatty() and not in_ci and os.environ.get("TERM") != "dumb"


class Tracker:
    """What long work reports to. The quiet tracker (``enabled`` False) ignores every call."""

    def __init__(self, progress: Progress | None = None) -> None:
        self._progress = progress
        self._task: TaskID | None = None

    @property
    def enabled(self) -> bool:
        """Whether anything is shown: work done only for the display (counting the rows to come)
        is skipped when not."""
        return self._progress is not None

    def step(self, description: str, *, total: int | None = None) -> None:
        """Begin a step: a bar when its ``total`` is known, else a spinner. The previous step's
        line goes away."""
        if self._progress is None:
            return
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(description, total=total)
        self._progress.refresh()  # drawn now: a step shorter than the refresh interval shows too

    def update(self, *, completed: int | None = None, total: int | None = None) -> None:
        """``completed`` of ``total`` so far in the current step."""
        if self._progress is None or self._task is None:
            return
        self._progress.update(self._task, completed=completed, total=total)

    def completed(self, count: int) -> None:
        """A callback for loops that count what they did (``verify_chain``'s ``on_progress``)."""
        self.update(completed=count)


QUIET = Tracker()


class _Count(MofNCompleteColumn):
    """ "120000/450000" (rows, tables …); nothing for a step that counts nothing (a restore)."""

    def render(self, task: Task) -> Text:
        if task.total is None and not task.completed:
            return Text("")
        return super().render(task)


@contextmanager
def track(description: str, *, total: int | None = None, stream: TextIO | None = None) -> Iterator[Tracker]:
    """Show ``description`` with a bar (``total`` known) or a spinner while the block runs, on a
    terminal (stderr unless ``stream``); elsewhere yield the quiet tracker."""
    out = stream if stream is not None else sys.stderr
    if not shown_on(out):
        yield QUIET
        return
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        _Count(),
        TimeElapsedColumn(),
        console=Console(file=out),
        transient=True,  # the bar goes away: what stays on the screen is the command's own output
    )
    with progress:
        tracker = Tracker(progress)
        tracker.step(description, total=total)
        yield tracker
