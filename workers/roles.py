"""Worker roles: the ordinary worker, which does everything of its queue, and the urgent worker
(``chuong worker --queue high --urgent-only``), which does only what must not wait (issue 16 item 7).

Under a broadcast every sending worker's event loop is saturated: each round trip of a new item's
first page waited 30–800 ms behind the broadcast's callbacks on a loaded 2-core machine, however
early the page was ordered. The urgent worker is a bulkhead: a process of its own that never
claims a bulk batch, so it sleeps until urgent work comes and the kernel wakes it at once. It
takes, on its queue:

* first pages, as they are announced (notifications/first_pages.py), on its first-page lane,
  queueing for the lane up to the hand-over when several come at once;
* a new notification's fan-out (``fanout:…``), one page: the first, which it then announces to
  itself; the rest goes to the other workers as backlog (``fanout-next:…``);
* the tracking sweep (cron) and sender (``tracking-send:…``, one at a time), scheduled news
  releases (``news-release:…``) and their 5 s safety tick.

It never starts a send job (``send:``, ``retry:``, ``resend:``, nor a page's ``first:`` job, the
other workers' wake-up of record), a fan-out's next slice, or any other cron. It is optional:
while one is alive (its health record, ``urgent_health_key``, rewritten every second) the other
workers of its queue leave it young urgent work for ``urgent_role.HANDOVER_SECONDS`` and then take
it themselves (notifications/urgent_role.py); without one they do everything, as before.
"""

from __future__ import annotations

from core.jobs import FAN_OUT_PREFIX, NEWS_RELEASE_PREFIX, TRACKING_SEND_PREFIX, JobName, is_first_page_job

# arq names a unique cron's job ``cron:<function>:<time in ms>`` (arq.worker.Worker.run_cron).
URGENT_CRONS = (JobName.TRACKING_SWEEP, JobName.NEWS_TICK)
URGENT_JOB_PREFIXES = (
    FAN_OUT_PREFIX,
    NEWS_RELEASE_PREFIX,
    TRACKING_SEND_PREFIX,
    *(f"cron:{name.value}:" for name in URGENT_CRONS),
)
# Jobs an urgent worker runs at most this many at a time: a drain of thousands of reminders is
# CPU-bound, and a second one in the same event loop would only delay the first pages it makes.
URGENT_JOBS_HELD = {TRACKING_SEND_PREFIX: 1}
# Its health record every second, kept two (arq writes it from its poll loop with an expiry of the
# interval + 1 s): the other workers' sign that it is alive.
URGENT_HEALTH_CHECK_SECONDS = 1


def is_urgent_job(job_id: str) -> bool:
    """A job the urgent worker starts."""
    return job_id.startswith(URGENT_JOB_PREFIXES)


def left_to_urgent(job_id: str) -> bool:
    """A job the other workers leave to a live urgent worker for the hand-over: its own, and a
    first page's send job (which, after the hand-over, finds the page sent, or sends it)."""
    return is_urgent_job(job_id) or is_first_page_job(job_id)


def urgent_health_key(queue_name: str) -> str:
    """The urgent worker's health record (``chuong worker --urgent-only --check`` reads it)."""
    return f"{queue_name}:urgent:health-check"
