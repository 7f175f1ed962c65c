"""arq's Worker with three changes: its polling skips the ids of jobs already running, it starts
new work ahead of a broadcast's backlog, and the process outlives a Redis outage. And the urgent
worker (``UrgentWorker``, workers/roles.py), which starts only latency-critical jobs, and to which
the ordinary workers leave them for a hand-over while it is alive.

Every poll (50 ms, workers/settings.py) arq reads up to 100 due job ids from the queue and, for
each, WATCHes its in-progress key and reads it and the job's score: three Redis round trips per
id. A running job stays in the queue until it finishes, so the send jobs a worker holds (up to
``max_jobs``, most of them waiting for a send slot, notifications/delivery.py) were checked again
at every poll only to find "already running": 6 % of a sending worker's CPU in issue 16's
profile. Skipping those ids changes nothing else: a job this process runs cannot be started
here again anyway (its in-progress key exists), and other workers still see it in the queue.

arq starts due jobs oldest first, so a breaking-news item's jobs waited behind the send jobs a
broadcast's fan-out had queued (40 pages at a time), and behind the 20 that each worker had
already started and that waited in it for a send slot: 5 s under a running broadcast instead of
64 ms (issue 16). A worker now starts everything that is not backlog first and holds only a few
send jobs (``start_jobs``); which batch those send is decided in PostgreSQL, most urgent first
(notifications/outbox.py ``claim_most_urgent``; docs/delivery.md "Urgent before bulk"). A new
notification's first page has a send job of its own kind, started at the next poll within a room
of its own, which may send on the worker's first-page lane (notifications/first_page_lane.py).

arq's main loop ends at the first Redis call that fails, and the process exited with it: a Redis
restart of a few seconds stopped every worker (tests/notifications/test_redis_restart.py).
``run_worker`` starts a fresh worker after such an ending, with a growing pause, until Redis
answers again; nothing is lost meanwhile, since PostgreSQL holds every piece of work and the
reconciler queues it again (docs/delivery.md "Guarantees"). SIGTERM or Ctrl-C during a pause
stops the process as usual.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

from arq.constants import in_progress_key_prefix
from arq.worker import Worker, get_kwargs
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.config import get_settings
from core.jobs import is_backlog_job, is_first_page_job, is_send_job
from core.logging import get_logger
from notifications import urgent_role
from workers.arq_clock import timestamp_ms, use_service_clock
from workers.roles import URGENT_JOBS_HELD, is_urgent_job, left_to_urgent, urgent_health_key

log = get_logger(__name__)


# Backlog ids checked past the room for send jobs, for the ones other workers run.
_LOOK_PAST = 32
# How often a worker looks whether an urgent worker of its queue is alive (one EXISTS).
_PRESENCE_READ_SECONDS = 1.0


class PollingWorker(Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._presence_read_at: float | None = None  # when _urgent_worker_alive last asked Redis

    async def close(self) -> None:
        """arq's ``close`` with the job tasks awaited whatever they ended with. arq gathers the
        tasks its stop signal cancelled without ``return_exceptions``: a job cancelled while arq
        itself was starting or finishing it (its Redis pipeline) ends cancelled, and that
        CancelledError came out of ``close``. The shutdown hook then never ran (the first-page
        lane's page left unwritten, providers, Redis and database pools left open) and the
        process ended with a traceback and status 1: a 1M-device benchmark's workers did, on
        SIGTERM. Send jobs themselves catch the cancel and write what they sent first
        (notifications/delivery.py ``_drain``)."""
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)  # as arq does: cancel the jobs, end the main loop
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        self.tasks.clear()  # all ended: arq's own close finds none left to gather
        await super().close()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Of the due jobs (oldest first), start every job that is not backlog first, then the
        backlog in queue order while this worker holds fewer than ``send_jobs_held`` send jobs
        (core/jobs.py ``is_backlog_job``). Jobs running here are skipped (see above), and so are
        jobs another worker runs: one pipelined EXISTS of their in-progress keys, where arq
        would spend three round trips on each, and a job running elsewhere must not use up the
        room for send jobs."""
        ids = [job_id.decode() for job_id in job_ids]
        ids = await self._leave_to_urgent([job_id for job_id in ids if job_id not in self.tasks])
        room = self.send_jobs_held - sum(
            1 for job_id, task in self.tasks.items() if is_send_job(job_id) and not task.done()
        )
        # First pages' send jobs: ahead of the backlog, in queue order, a few at a time (a burst of
        # tracking reminders is hundreds of first pages; the rest wait in the queue).
        first_room = self.first_page_jobs_held - sum(
            1 for job_id, task in self.tasks.items() if is_first_page_job(job_id) and not task.done()
        )
        first_pages = [job_id for job_id in ids if is_first_page_job(job_id)]
        first_pages = first_pages[: max(first_room, 0) + _LOOK_PAST]
        first = [job_id for job_id in ids if not is_backlog_job(job_id) and not is_first_page_job(job_id)]
        first += first_pages if first_room > 0 else []
        # The head of the backlog is mostly what other workers run (a job stays queued until it
        # ends): look a few past the room.
        backlog = [job_id for job_id in ids if is_backlog_job(job_id)][: max(room, 0) + _LOOK_PAST]
        candidates = first + (backlog if room > 0 else [])
        if not candidates:
            return
        async with self.pool.pipeline(transaction=False) as pipe:
            for job_id in candidates:
                pipe.exists(in_progress_key_prefix + job_id)
            running = dict(zip(candidates, await pipe.execute(), strict=True))
        taken = []
        for job_id in backlog if room > 0 else []:
            if running[job_id]:
                continue
            if is_send_job(job_id):
                if room <= 0:
                    break  # and what is queued behind it waits too: the backlog keeps its order
                room -= 1
            taken.append(job_id)
        started = []
        for job_id in first:
            if running[job_id]:
                continue
            if is_first_page_job(job_id):
                if first_room <= 0:
                    continue
                first_room -= 1
            started.append(job_id)
        await super().start_jobs([job_id.encode() for job_id in started + taken])

    async def _leave_to_urgent(self, ids: list[str]) -> list[str]:
        """While an urgent worker of this queue is alive, the urgent jobs it is there for are left
        to it until they have waited ``urgent_role.HANDOVER_SECONDS`` (workers/roles.py)."""
        if not await self._urgent_worker_alive():
            return ids
        urgent = [job_id for job_id in ids if left_to_urgent(job_id)]
        if not urgent:
            return ids
        async with self.pool.pipeline(transaction=False) as pipe:
            for job_id in urgent:
                pipe.zscore(self.queue_name, job_id)
            scores = await pipe.execute()
        # A job's score is when it became due (arq's clock, the service clock: workers/arq_clock.py).
        handed_over = timestamp_ms() - urgent_role.HANDOVER_SECONDS * 1000
        young = {job_id for job_id, score in zip(urgent, scores, strict=True) if (score or 0) > handed_over}
        return [job_id for job_id in ids if job_id not in young]

    async def _urgent_worker_alive(self) -> bool:
        """Read at most every ``_PRESENCE_READ_SECONDS``; the process's other paths (announcements,
        claims) follow what was read (notifications/urgent_role.py)."""
        now = time.monotonic()
        if self._presence_read_at is None or now - self._presence_read_at >= _PRESENCE_READ_SECONDS:
            self._presence_read_at = now
            alive = bool(await self.pool.exists(urgent_health_key(self.queue_name)))
            urgent_role.note_presence(present=alive)
        return urgent_role.defers()

    @property
    def send_jobs_held(self) -> int:
        """Send jobs a worker holds at a time: enough to keep its send slots busy (each batch
        in flight, one finishing, one ready to claim next), few enough that the queue, not the
        worker, holds the rest. A send job claims its batch only when it gets a send slot
        (notifications/delivery.py), so holding more would only fill the worker's ``max_jobs``
        with jobs waiting in it (20 of them made each send job wait up to 20 batches, past the
        job timeout on a busy machine) and keep out what is not backlog."""
        return 4 * get_settings().send_batches_in_flight

    @property
    def first_page_jobs_held(self) -> int:
        """First pages' send jobs a worker holds at a time: one for its first-page lane, one
        ready for it (notifications/first_page_lane.py); a job that finds the lane
        busy sends through the send slots like any send job."""
        return 2


class UrgentWorker(PollingWorker):
    """``chuong worker --urgent-only`` (workers/roles.py): starts the urgent jobs of its queue and
    nothing else; its first pages come as announcements (workers/settings.py)."""

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        ids = [job_id.decode() for job_id in job_ids]
        ids = [job_id for job_id in ids if is_urgent_job(job_id) and job_id not in self.tasks]
        if not ids:
            return
        async with self.pool.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.exists(in_progress_key_prefix + job_id)
            running = await pipe.execute()
        rooms = {
            prefix: held
            - sum(1 for job_id, task in self.tasks.items() if job_id.startswith(prefix) and not task.done())
            for prefix, held in URGENT_JOBS_HELD.items()
        }
        started = []
        for job_id, elsewhere in zip(ids, running, strict=True):
            if elsewhere:
                continue
            bounded = [prefix for prefix in rooms if job_id.startswith(prefix)]
            if bounded:
                if rooms[bounded[0]] <= 0:
                    continue  # the others take it after the hand-over
                rooms[bounded[0]] -= 1
            started.append(job_id)
        await Worker.start_jobs(self, [job_id.encode() for job_id in started])


# Pauses before starting again after Redis went away: quick for a blip, then every 10 s.
RESTART_PAUSES_SECONDS = (1.0, 2.0, 5.0, 10.0)
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def run_worker(
    settings_cls: type, *, worker_class: type[PollingWorker] = PollingWorker, **kwargs: Any
) -> PollingWorker | None:
    """arq's `run_worker`, making a `PollingWorker` (or an `UrgentWorker`), started again while
    Redis is unreachable. Returns the worker that ended normally, or None if a stop signal came
    during a pause."""
    use_service_clock()  # arq's scores and crons on the shared clock (workers/arq_clock.py)
    failures = 0
    while True:
        worker = worker_class(**{**_settings(settings_cls), **kwargs})
        try:
            worker.run()
            return worker
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            pause = RESTART_PAUSES_SECONDS[min(failures, len(RESTART_PAUSES_SECONDS) - 1)]
            failures += 1
            log.warning("worker_redis_unavailable", error_type=type(exc).__name__, restart_in_seconds=pause)
            if _stopped_during(pause):
                return None


def _settings(settings_cls: type) -> dict[str, Any]:
    """The Worker's arguments a settings class gives, inherited ones included: arq's ``get_kwargs``
    reads only the class's own ``__dict__`` (``UrgentWorkerSettings`` inherits from
    ``WorkerSettings``, workers/settings.py)."""
    merged: dict[str, Any] = {}
    for cls in reversed(settings_cls.__mro__):
        merged.update(get_kwargs(cls))
    return merged


def _stopped_during(seconds: float) -> bool:
    """Wait, but let SIGTERM or SIGINT end the wait (no event loop runs to deliver them now)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        return signal.sigtimedwait(_STOP_SIGNALS, seconds) is not None
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
