"""Issue 13: the after-commit enqueue is core's (core/after_commit.py), with the queue injected at
start-up: deferred jobs reach the registered enqueuer once the transaction has committed, and
never when it rolls back."""

import pytest

from core.after_commit import committing
from core.jobs import DeferredJob, JobName, defer, set_enqueuer
from workers.queue import enqueue


async def test_deferred_jobs_reach_the_registered_enqueuer_only_after_the_commit(database_url):
    handed: list[list[DeferredJob]] = []

    async def enqueuer(jobs: list[DeferredJob]) -> None:
        handed.append(jobs)

    set_enqueuer(enqueuer)
    try:
        async with committing() as session:
            defer(session, JobName.FAN_OUT, "n-1", job_id="fanout:n-1")
            assert handed == []  # not before the commit
        assert [[job.job_id for job in jobs] for jobs in handed] == [["fanout:n-1"]]

        async def failing() -> None:
            async with committing() as session:
                defer(session, JobName.FAN_OUT, "n-2", job_id="fanout:n-2")
                raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError):
            await failing()
        assert len(handed) == 1  # the rollback dropped its job
    finally:
        set_enqueuer(enqueue)
