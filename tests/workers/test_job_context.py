"""Issue 13: a job function gets a typed JobContext made from arq's ctx dict, and the job's id,
name and try are bound to the log context while it runs, and only then."""

import pytest
import structlog

from core.jobs import JobName
from notifications.providers.base import PushProvider
from workers.context import JobContext, WorkerResources, arq_ctx, job

seen: list[tuple[JobContext, dict]] = []


# Stand-ins named as jobs (arq registers a function by its __qualname__, which `job` checks).
@job(JobName.RECONCILE)
async def reconcile(ctx: JobContext) -> int:
    seen.append((ctx, structlog.contextvars.get_contextvars()))
    return 7


@job(JobName.PURGE)
async def purge(ctx: JobContext) -> None:
    raise RuntimeError("failed")


@job(JobName.SEND_BATCH)
async def send_batch(ctx: JobContext) -> None:
    ctx.providers  # noqa: B018 - the access is the test


def _arq_ctx_of_a_run(resources: WorkerResources) -> dict:
    # What arq passes: the worker's ctx merged with the job's entries (arq/worker.py run_job).
    return {**arq_ctx(resources), "redis": object(), "job_id": "j-1", "job_try": 2, "score": 0}


async def test_the_job_reads_typed_attributes_and_logs_under_its_id() -> None:
    providers: dict[str, PushProvider] = {}
    seen.clear()
    structlog.contextvars.bind_contextvars(request_id="outer")
    try:
        assert await reconcile(_arq_ctx_of_a_run(WorkerResources(providers=providers))) == 7
        [(ctx, bound)] = seen
        assert (ctx.name, ctx.job_id, ctx.job_try) == (JobName.RECONCILE, "j-1", 2)
        assert ctx.providers is providers
        assert bound == {"request_id": "outer", "job_id": "j-1", "job_name": "reconcile", "job_try": 2}
        # Unbound when the job ends; what the caller had bound is left as it was.
        assert structlog.contextvars.get_contextvars() == {"request_id": "outer"}
    finally:
        structlog.contextvars.clear_contextvars()


async def test_the_job_context_is_unbound_when_the_job_fails_too() -> None:
    with pytest.raises(RuntimeError):
        await purge(_arq_ctx_of_a_run(WorkerResources()))
    assert structlog.contextvars.get_contextvars() == {}


async def test_a_worker_without_providers_says_so_when_a_job_needs_them() -> None:
    with pytest.raises(RuntimeError, match="no push providers"):
        await send_batch({})
