"""Writing again what a transient database failure cut short, when the write records an act that
cannot be taken back.

A send job writes a provider's answers after the request went out; an SMS sweep writes the
gateway's after the message was sent. If that write fails, the rows stay leased and unrecorded,
and once the lease runs out they are sent again: a second push, a second paid SMS. A lock or
statement timeout, a pool checkout that timed out, a server refusing connections for a moment,
or a connection cut under the statement (a restart, a failover) usually passes within seconds,
so such a write is tried again for a bounded time instead. The writes this serves are
idempotent: a row is written only at the attempt count the sender saw, and a batch is settled
only by the lease's holder, so a write that did commit before its connection broke is harmless
to repeat.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from core.db import is_bounded_wait, lost_connection
from core.logging import get_logger

log = get_logger(__name__)

T = TypeVar("T")

FIRST_PAUSE_SECONDS = 0.1
LONGEST_PAUSE_SECONDS = 2.0


def transient(exc: BaseException) -> bool:
    """A failure that changed nothing (or nothing a repeat would not) and may pass: see
    ``core.db.is_bounded_wait`` and ``core.db.lost_connection``."""
    return is_bounded_wait(exc) or lost_connection(exc)


async def rewrite_while_transient(write: Callable[[], Awaitable[T]], *, within: float, what: str) -> T:
    """Run ``write`` (a transaction of its own each time) until it succeeds, or until a failure
    is not transient or ``within`` seconds have passed: then that failure is raised. Pauses
    double from 0.1 s up to 2 s between tries."""
    deadline = time.monotonic() + within
    pause = FIRST_PAUSE_SECONDS
    tries = 1
    while True:
        try:
            return await write()
        except Exception as exc:
            if not transient(exc) or time.monotonic() + pause > deadline:
                raise
            log.warning("write_retried", what=what, tries=tries, error=type(exc).__name__)
        await asyncio.sleep(pause)
        pause = min(2 * pause, LONGEST_PAUSE_SECONDS)
        tries += 1
