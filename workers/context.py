"""What a job gets from its worker, typed, and the wrapper every job function goes through.

arq hands each job a ``dict[str, Any]``: the worker's own entries merged with the job's
(``job_id``, ``job_try``, ``enqueue_time``). The worker's start-up (workers/settings.py) puts one
``WorkerResources`` in it; ``job`` turns the dict into a ``JobContext`` once, so job functions
read typed attributes, and binds the job's id, name and try to the structlog context for as long
as the job runs, so that every line it logs (and what it calls logs) says which job it was.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar

import structlog

from core.jobs import JobName

if TYPE_CHECKING:
    from notifications.providers.base import PushProvider
    from notifications.providers.sms import SmsProvider
    from workers.metrics_server import MetricsServer

RESOURCES_KEY = "chuong_worker"
"""The entry of arq's ctx that holds what the worker's start-up built."""
QUEUE_KEY = "chuong_queue"
"""The queue a worker serves ("high", "bulk"), as `chuong worker --queue` puts it in arq's ctx."""
URGENT_KEY = "chuong_urgent_only"
"""True in an urgent worker's ctx (`chuong worker --urgent-only`, workers/roles.py)."""


@dataclass(kw_only=True)
class WorkerResources:
    """What a worker builds once, at start-up, and all its jobs share."""

    providers: Mapping[str, PushProvider] | None = None
    # A long-lived SMS gateway client, if the worker is given one; without it each SMS run
    # builds and closes its own (workers/sms_jobs.py).
    sms_provider: SmsProvider | None = None
    metrics_server: MetricsServer | None = None
    # An urgent worker (workers/roles.py): its jobs do only the latency-critical part of their work.
    urgent_only: bool = False


def arq_ctx(resources: WorkerResources) -> dict[str, Any]:
    """An arq ctx for a worker holding ``resources`` (for a ``Worker(ctx=...)`` or a direct call)."""
    return {RESOURCES_KEY: resources}


def resources_of(ctx: dict[str, Any]) -> WorkerResources:
    """The worker's resources in arq's ctx; empty for a job function called without a worker."""
    resources = ctx.get(RESOURCES_KEY)
    if resources is None:
        return WorkerResources()
    if not isinstance(resources, WorkerResources):
        raise TypeError(f"ctx[{RESOURCES_KEY!r}] is a {type(resources).__name__}, not WorkerResources")
    return resources


@dataclass(frozen=True, kw_only=True)
class JobContext:
    """One run of one job: which it is, and its worker's resources."""

    name: JobName
    job_id: str | None  # None when a test calls the job function directly
    job_try: int | None
    worker: WorkerResources

    @classmethod
    def of(cls, ctx: dict[str, Any], name: JobName) -> JobContext:
        job_id = ctx.get("job_id")
        job_try = ctx.get("job_try")
        return cls(
            name=name,
            job_id=None if job_id is None else str(job_id),
            job_try=None if job_try is None else int(job_try),
            worker=resources_of(ctx),
        )

    @property
    def providers(self) -> Mapping[str, PushProvider]:
        if self.worker.providers is None:
            raise RuntimeError("this worker has no push providers (its start-up builds them)")
        return self.worker.providers


P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
JobFunction = Callable[Concatenate[JobContext, P], Awaitable[R]]


class ArqFunction(Protocol[P, R_co]):
    """A job as arq calls it (arq's ``WorkerCoroutine``: it registers it by ``__qualname__``)."""

    __qualname__: str

    def __call__(
        self, ctx: dict[str, Any], *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R_co]: ...


def job(name: JobName) -> Callable[[JobFunction[P, R]], ArqFunction[P, R]]:
    """Registers a job function under ``name``: arq calls the returned coroutine function with
    its ctx dict, and the function gets a ``JobContext`` instead.

    The function must be named as its job: arq registers functions by ``__qualname__``, and a
    mismatch would leave the name unserved (tests/workers/test_job_names.py checks the list)."""

    def register(function: JobFunction[P, R]) -> ArqFunction[P, R]:
        if getattr(function, "__qualname__", None) != name.value:
            raise ValueError(f"job {name.value!r} is registered by a function of another name")

        @functools.wraps(function)
        async def run(ctx: dict[str, Any], *args: P.args, **kwargs: P.kwargs) -> R:
            context = JobContext.of(ctx, name)
            # Restored when the job ends: arq runs each job in a task of its own, but a test
            # calling a job directly shares its caller's context.
            with structlog.contextvars.bound_contextvars(
                job_id=context.job_id, job_name=name.value, job_try=context.job_try
            ):
                return await function(context, *args, **kwargs)

        return run

    return register
