"""Issue 13: job names are one typed set (core.jobs.JobName). Every name a transaction can defer
has a function registered under it in the worker, every registered function has a name, and a
name outside the set cannot be deferred: mypy rejects it, and defer raises at once.

The ``type: ignore[arg-type]`` below is the static half of the proof: mypy checks this module
with ``warn_unused_ignores`` (pyproject.toml), so if ``defer`` accepted any string the ignore
would be unused and ``mypy .`` would fail."""

import pytest
from arq.worker import func

from core.after_commit import committing
from core.jobs import JobName, defer
from workers.context import JobContext, job
from workers.settings import WorkerSettings


def test_every_job_name_has_one_registered_function_and_every_function_a_name() -> None:
    registered = [func(function).name for function in WorkerSettings.functions]  # as arq names them
    assert sorted(registered) == sorted(name.value for name in JobName)


def test_every_cron_job_runs_a_registered_function() -> None:
    functions = set(WorkerSettings.functions)
    for cron_job in WorkerSettings.cron_jobs:
        assert cron_job.coroutine in functions, cron_job.name


def test_a_job_function_must_carry_its_job_name() -> None:
    async def send(ctx: JobContext) -> None: ...

    with pytest.raises(ValueError, match="fan_out"):
        job(JobName.FAN_OUT)(send)


async def test_deferring_a_name_outside_the_set_fails_in_the_deferring_transaction(database_url) -> None:
    with pytest.raises(ValueError, match="fanout"):
        async with committing() as session:
            defer(session, "fanout", "n-1")  # type: ignore[arg-type]
