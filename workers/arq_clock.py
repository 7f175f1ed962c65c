"""arq on the service clock instead of the host's wall clock.

arq scores a queued job by its due time in Unix milliseconds (``timestamp_ms()`` when it is
enqueued, or its ``defer_until``), and a worker takes the jobs scored up to its own
``timestamp_ms()``; its crons are due by ``datetime.now()``. All of them read the host's wall
clock, so one host's clock stepped 10 minutes ahead would score what it enqueues 10 minutes late
for every other worker, run their deferred retries 10 minutes early, and stepped back it would
hold its crons (the reconciler among them) for 10 minutes (issue 18, scenario 7). In the worker
process they read the service clock instead (core/clock.py, anchored to the database's by
core/clock_sync.py); the enqueuer (workers/queue.py) scores jobs by the same clock.

arq 0.28 has no setting for its clock: its modules' ``timestamp_ms`` and ``arq.worker``'s
``datetime`` are replaced, and checked first so that an upgrade that moves them fails loudly.
"""

from __future__ import annotations

import datetime as dt
from types import ModuleType

import arq.connections
import arq.jobs
import arq.worker

from core import clock

_MODULES_SCORING: tuple[ModuleType, ...] = (arq.worker, arq.connections, arq.jobs)


class ArqInternalsError(RuntimeError):
    """arq no longer reads its clock where this module replaces it."""


def timestamp_ms() -> int:
    return int(clock.reference_now().timestamp() * 1000)


class ServiceDatetime(dt.datetime):
    """``datetime`` whose ``now()`` is the service clock (arq.worker's crons read it)."""

    @classmethod
    def now(cls, tz: dt.tzinfo | None = None) -> ServiceDatetime:
        moment = clock.reference_now()
        local = moment.astimezone(tz) if tz is not None else moment.astimezone().replace(tzinfo=None)
        return cls.combine(local.date(), local.timetz())  # the same moment, as this class


def use_service_clock() -> None:
    """Make arq, in this process, read the service clock. Idempotent."""
    for module in _MODULES_SCORING:
        if not callable(getattr(module, "timestamp_ms", None)):
            raise ArqInternalsError(f"{module.__name__} no longer has timestamp_ms")
        module.timestamp_ms = timestamp_ms  # type: ignore[attr-defined]
    if getattr(arq.worker, "datetime", None) not in (dt.datetime, ServiceDatetime):
        raise ArqInternalsError("arq.worker no longer reads datetime.now() through `datetime`")
    arq.worker.datetime = ServiceDatetime  # type: ignore[attr-defined]
