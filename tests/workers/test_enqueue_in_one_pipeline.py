"""The after-commit enqueue sends a commit's jobs in one pipeline (workers/queue.py) and stores
them as arq's own ``enqueue_job`` does: arq reads them back, a job id already queued (or whose
result is kept) is not queued twice, and a deferred job is scored by its time."""

import datetime as dt
import uuid

from arq.jobs import Job, JobStatus
from arq.utils import to_unix_ms

from core.jobs import HIGH_QUEUE, DeferredJob, JobName
from workers import queue


async def test_a_commits_jobs_are_stored_as_arq_stores_them(redis):
    tag = uuid.uuid4().hex
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    jobs = [
        DeferredJob(name=JobName.FAN_OUT, args=(f"n-{i}",), job_id=f"fanout:{tag}:{i}") for i in range(300)
    ]
    jobs.append(DeferredJob(name=JobName.INBOX_FAN_OUT, args=("x",), job_id=f"late:{tag}", defer_until=later))
    await queue.enqueue(jobs)
    # A second commit naming queued ids (a reconciler's re-enqueue) changes nothing.
    again = [DeferredJob(name=JobName.FAN_OUT, args=("other",), job_id=job.job_id) for job in jobs[:10]]
    await queue.enqueue(again)
    pool = await queue.get_pool()
    queued = [member.decode() for member in await pool.zrange(HIGH_QUEUE, 0, -1)]
    ours = [job_id for job_id in queued if tag in job_id]
    assert len(ours) == 301
    info = await Job(f"fanout:{tag}:7", pool, _queue_name=HIGH_QUEUE).info()
    assert info is not None and info.function == "fan_out" and info.args == ("n-7",)
    assert await Job(f"fanout:{tag}:7", pool, _queue_name=HIGH_QUEUE).status() == JobStatus.queued
    late = await Job(f"late:{tag}", pool, _queue_name=HIGH_QUEUE).status()
    assert late == JobStatus.deferred
    score = await pool.zscore(HIGH_QUEUE, f"late:{tag}")
    assert score == to_unix_ms(later)  # as arq scores a deferred job
    ttl = await pool.pttl(f"arq:job:late:{tag}")
    assert ttl > 5 * 60 * 1000  # kept past its start, as arq keeps it
