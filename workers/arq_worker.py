"""arq's Worker with one fix to its polling: the ids of jobs this worker is already running are
not checked again.

Every poll (50 ms, workers/settings.py) arq reads up to 100 due job ids from the queue and, for
each, WATCHes its in-progress key and reads it and the job's score: three Redis round trips per
id. A running job stays in the queue until it finishes, so the send jobs a worker holds (up to
``max_jobs``, most of them waiting for a send slot, notifications/delivery.py) were checked again
at every poll only to find "already running": 6 % of a sending worker's CPU in issue 16's
profile. Skipping those ids changes nothing else: a job this process runs cannot be started
here again anyway (its in-progress key exists), and other workers still see it in the queue.
"""

from __future__ import annotations

from typing import Any

from arq.worker import Worker, get_kwargs


class PollingWorker(Worker):
    async def start_jobs(self, job_ids: list[bytes]) -> None:
        running = self.tasks
        await super().start_jobs([job_id for job_id in job_ids if job_id.decode() not in running])


def run_worker(settings_cls: type, **kwargs: Any) -> PollingWorker:
    """arq's `run_worker`, making a `PollingWorker`."""
    worker = PollingWorker(**{**get_kwargs(settings_cls), **kwargs})
    worker.run()
    return worker
