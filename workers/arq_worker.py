"""arq's Worker with two fixes: its polling skips the ids of jobs this worker is already running,
and the process outlives a Redis outage.

Every poll (50 ms, workers/settings.py) arq reads up to 100 due job ids from the queue and, for
each, WATCHes its in-progress key and reads it and the job's score: three Redis round trips per
id. A running job stays in the queue until it finishes, so the send jobs a worker holds (up to
``max_jobs``, most of them waiting for a send slot, notifications/delivery.py) were checked again
at every poll only to find "already running": 6 % of a sending worker's CPU in issue 16's
profile. Skipping those ids changes nothing else: a job this process runs cannot be started
here again anyway (its in-progress key exists), and other workers still see it in the queue.

arq's main loop ends at the first Redis call that fails, and the process exited with it: a Redis
restart of a few seconds stopped every worker (tests/notifications/test_redis_restart.py).
``run_worker`` starts a fresh worker after such an ending, with a growing pause, until Redis
answers again; nothing is lost meanwhile, since PostgreSQL holds every piece of work and the
reconciler queues it again (docs/delivery.md "Guarantees"). SIGTERM or Ctrl-C during a pause
stops the process as usual.
"""

from __future__ import annotations

import signal
from typing import Any

from arq.worker import Worker, get_kwargs
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.logging import get_logger
from workers.arq_clock import use_service_clock

log = get_logger(__name__)


class PollingWorker(Worker):
    async def start_jobs(self, job_ids: list[bytes]) -> None:
        running = self.tasks
        await super().start_jobs([job_id for job_id in job_ids if job_id.decode() not in running])


# Pauses before starting again after Redis went away: quick for a blip, then every 10 s.
RESTART_PAUSES_SECONDS = (1.0, 2.0, 5.0, 10.0)
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def run_worker(settings_cls: type, **kwargs: Any) -> PollingWorker | None:
    """arq's `run_worker`, making a `PollingWorker`, started again while Redis is unreachable.
    Returns the worker that ended normally, or None if a stop signal came during a pause."""
    use_service_clock()  # arq's scores and crons on the shared clock (workers/arq_clock.py)
    failures = 0
    while True:
        worker = PollingWorker(**{**get_kwargs(settings_cls), **kwargs})
        try:
            worker.run()
            return worker
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            pause = RESTART_PAUSES_SECONDS[min(failures, len(RESTART_PAUSES_SECONDS) - 1)]
            failures += 1
            log.warning("worker_redis_unavailable", error_type=type(exc).__name__, restart_in_seconds=pause)
            if _stopped_during(pause):
                return None


def _stopped_during(seconds: float) -> bool:
    """Wait, but let SIGTERM or SIGINT end the wait (no event loop runs to deliver them now)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        return signal.sigtimedwait(_STOP_SIGNALS, seconds) is not None
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
