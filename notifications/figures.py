"""Figures of the whole service, computed in one place and exported by the API.

Some gauges are true of the service, not of a process: the due-but-unclaimed backlog and the age
of its oldest delivery (notifications/backlog.py), the fan-out lag, when the audit verification,
the backups and the restore drills last succeeded (core/maintenance.py), whether a push breaker is
open. The SQL ones are measured by one worker's periodic job (``measure_and_publish``, a unique
cron every ``EVERY_SECONDS``: one query for the whole service, never one per scrape per worker)
and published to Redis as one small JSON value; the API's ``GET /metrics`` loads it and exports it
(``FiguresCollector``). The breaker states are read from Redis, where they live, at each scrape.

A snapshot older than ``FRESH_SECONDS`` (no worker ran the job: none alive, or its crons stuck)
exports only its time, ``chuong_figures_computed_timestamp_seconds``, and the maintenance times
(which do not go stale with it): a backlog of zero measured ten minutes ago must not read as a
backlog of zero now. The alert ChuongFiguresStale says so instead (deploy/prometheus/alerts.yml).
Redis holds only this copy; losing it loses one period of figures, never a fact.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import orjson
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from core import maintenance
from core.clock import utcnow
from core.db import transaction
from core.logging import get_logger
from core.redis import get_redis
from notifications import backlog, breaker

log = get_logger(__name__)

KEY = "chuong:figures"
EVERY_SECONDS = 15
FRESH_SECONDS = 60
KEPT_SECONDS = 900


@dataclass(frozen=True)
class MaintenanceTimes:
    task: str
    repo: str
    last_success: float | None  # unix seconds
    last_failure: float | None


@dataclass(frozen=True)
class Figures:
    computed_at: float  # unix seconds
    due: list[backlog.DueWork]
    fanouts_running: int
    fanout_lag_seconds: float
    maintenance: list[MaintenanceTimes]

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Figures:
        data = orjson.loads(raw)
        return cls(
            computed_at=float(data["computed_at"]),
            due=[backlog.DueWork(**item) for item in data["due"]],
            fanouts_running=int(data["fanouts_running"]),
            fanout_lag_seconds=float(data["fanout_lag_seconds"]),
            maintenance=[MaintenanceTimes(**item) for item in data["maintenance"]],
        )


def _timestamp(value: dt.datetime | None) -> float | None:
    return None if value is None else value.timestamp()


async def measure(*, now: dt.datetime) -> Figures:
    async with transaction() as session:
        measured = await backlog.measure(session, now=now)
        runs = await maintenance.all_runs(session)
    return Figures(
        computed_at=now.timestamp(),
        due=measured.due,
        fanouts_running=measured.fanouts_running,
        fanout_lag_seconds=measured.fanout_lag_seconds,
        maintenance=[
            MaintenanceTimes(
                run.task, run.repo, _timestamp(run.last_success_at), _timestamp(run.last_failure_at)
            )
            for run in runs
        ],
    )


async def measure_and_publish(*, now: dt.datetime) -> Figures:
    figures = await measure(now=now)
    await get_redis().set(KEY, figures.to_json(), ex=KEPT_SECONDS)
    return figures


async def load() -> Figures | None:
    raw = await get_redis().get(KEY)
    return None if raw is None else Figures.from_json(raw)


def _gauge(name: str, documentation: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


class FiguresCollector(Collector):
    """The latest figures and breaker states as Prometheus gauges. ``refresh`` (async: Redis) before
    each exposition; ``collect`` (called by prometheus_client, synchronously) only formats them."""

    def __init__(self) -> None:
        self._figures: Figures | None = None
        self._breakers: list[breaker.BreakerState] = []

    async def refresh(self) -> None:
        try:
            self._figures = await load()
        except (RedisError, OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("figures_unavailable", error=type(exc).__name__)
            self._figures = None
        try:
            self._breakers = await breaker.all_states()
        except (RedisError, OSError, ValueError) as exc:
            log.warning("breaker_states_unavailable", error=type(exc).__name__)
            self._breakers = []

    def describe(self) -> list[Metric]:
        return []  # names vary with what was loaded; nothing else in the registry uses them

    def collect(self) -> Iterator[Metric]:
        yield from self._breaker_metrics()
        figures = self._figures
        if figures is None:
            return
        computed = _gauge(
            "chuong_figures_computed_timestamp_seconds",
            "When a worker last measured the service-wide figures (every 15 s; stale: no worker runs crons)",
        )
        computed.add_metric([], figures.computed_at)
        yield computed
        yield from self._maintenance_metrics(figures)
        if utcnow().timestamp() - figures.computed_at <= FRESH_SECONDS:
            yield from self._backlog_metrics(figures)

    def _breaker_metrics(self) -> Iterator[Metric]:
        is_open = _gauge(
            "chuong_push_breaker_open", "1 while a push provider's circuit breaker is open", ["provider"]
        )
        ratio = _gauge(
            "chuong_push_breaker_error_ratio",
            "Share of a provider's answers that were errors over the breaker's window",
            ["provider"],
        )
        for state in self._breakers:
            is_open.add_metric([state.provider], 1.0 if state.open else 0.0)
            ratio.add_metric([state.provider], state.error_rate)
        yield is_open
        yield ratio

    @staticmethod
    def _maintenance_metrics(figures: Figures) -> Iterator[Metric]:
        success = _gauge(
            "chuong_maintenance_last_success_timestamp_seconds",
            "When a maintenance task last succeeded: audit_verify, backup (the newest complete "
            "backup's end, per pgBackRest repository), restore_drill (per repository)",
            ["task", "repo"],
        )
        failure = _gauge(
            "chuong_maintenance_last_failure_timestamp_seconds",
            "When a maintenance task last failed (audit_verify: a broken chain; restore_drill)",
            ["task", "repo"],
        )
        for run in figures.maintenance:
            if run.last_success is not None:
                success.add_metric([run.task, run.repo], run.last_success)
            if run.last_failure is not None:
                failure.add_metric([run.task, run.repo], run.last_failure)
        yield success
        yield failure

    @staticmethod
    def _backlog_metrics(figures: Figures) -> Iterator[Metric]:
        deliveries = _gauge(
            "chuong_outbox_due_deliveries",
            "Deliveries due now that no worker holds (the backlog), by notification priority",
            ["priority"],
        )
        batches = _gauge(
            "chuong_outbox_due_batches",
            "Send batches due now that no worker holds, by priority",
            ["priority"],
        )
        oldest = _gauge(
            "chuong_outbox_oldest_due_age_seconds",
            "How long the oldest due, unclaimed delivery has been due (0: none), by priority",
            ["priority"],
        )
        for work in figures.due:
            deliveries.add_metric([work.priority], work.deliveries)
            batches.add_metric([work.priority], work.batches)
            oldest.add_metric([work.priority], work.oldest_due_age_seconds)
        running = _gauge("chuong_fanout_running", "Notifications whose fan-out has not finished")
        running.add_metric([], figures.fanouts_running)
        lag = _gauge(
            "chuong_fanout_lag_seconds",
            "How long the least recently progressing unfinished fan-out has gone without writing a "
            "page (0: none running); the sends of its notification wait for it",
        )
        lag.add_metric([], figures.fanout_lag_seconds)
        yield from (deliveries, batches, oldest, running, lag)
