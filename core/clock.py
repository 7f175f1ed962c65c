"""The service's notion of "now". Every time-dependent rule (TOTP steps, token expiry,
throttling, step-up age, leases, retries, pacing) reads it, so tests can move time forward
instead of sleeping.

A worker compares what it reads here with what other processes wrote (a batch's lease, a retry's
due time, the pacing bucket's last refill, a queued job's score), so every process must read the
same clock. A host's wall clock is not that clock: NTP or an operator may step it minutes forward
or back at any moment (issue 18, scenario 7). So a process may *anchor* this clock to the
database's (core/clock_sync.py): from then on "now" is the database's time at the last reading
carried forward by the monotonic clock, which no step moves. Without an anchor (tests, scripts,
the CLI) it is the wall clock.

The carrying clock is Linux's ``CLOCK_BOOTTIME`` where there is one: monotonic like
``time.monotonic()``, but it also counts while the host is suspended, so a resumed host is not
behind by its sleep until the next reading.
"""

from __future__ import annotations

import datetime as dt
import time

_offset = dt.timedelta(0)
# (the reference clock's time, ``carrying()`` at that same moment)
_anchor: tuple[dt.datetime, float] | None = None
_CARRYING_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def carrying() -> float:
    """Seconds on the clock that carries the anchor forward: never stepped, never set back."""
    return time.clock_gettime(_CARRYING_CLOCK)


def reference_now() -> dt.datetime:
    """The shared clock itself, without the offset tests add: what a queued job is scored by
    (arq's workers compare those scores with this, workers/arq_clock.py)."""
    if _anchor is None:
        return dt.datetime.now(dt.UTC)
    reference, at = _anchor
    return reference + dt.timedelta(seconds=carrying() - at)


def utcnow() -> dt.datetime:
    return reference_now() + _offset


def anchor(reference: dt.datetime, *, at: float) -> None:
    """From now on, the clock reads ``reference`` at ``at`` (a ``carrying()`` reading) and runs
    with the carrying clock from there."""
    global _anchor
    _anchor = (reference, at)


def unanchor() -> None:
    global _anchor
    _anchor = None


def wall_clock_skew() -> float:
    """Seconds this host's wall clock is ahead of the shared clock (negative: behind)."""
    return time.time() - reference_now().timestamp()


def advance(seconds: float) -> None:
    """Move the clock forward (tests only)."""
    global _offset
    _offset += dt.timedelta(seconds=seconds)


def reset() -> None:
    """Back to the wall clock, without an offset (tests only)."""
    global _offset
    _offset = dt.timedelta(0)
    unanchor()
