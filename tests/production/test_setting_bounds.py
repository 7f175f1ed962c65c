"""Values that would break the service quietly are refused when the settings are read, naming
the setting (found while documenting every setting for deploy/production.env.example)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from core.config import Settings
from core.production import production_problems


def settings_of(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("setting", "value", "why"),
    [
        ("environment", "prod", "a typo would turn the production start-up checks off"),
        ("environment", "staging", "likewise"),
        ("send_batches_in_flight", 0, "Semaphore(0): every send job waits until its timeout"),
        ("device_limit_per_user", 0, "OFFSET -1: every registration fails"),
        ("apns_timeout_seconds", 0, "every APNs request times out at once"),
        ("reconcile_every_seconds", 0, "no cron step"),
        ("reconcile_every_seconds", 61, "a step past the minute runs once a minute at best"),
        ("db_pool_size", 0, "no connection for any request"),
        ("access_token_ttl_seconds", 0, "every token expired on issue"),
    ],
)
def test_a_value_that_breaks_the_service_is_refused(setting: str, value: object, why: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings_of(**{setting: value})
    assert setting in str(caught.value), why


def test_production_refuses_a_lease_that_a_running_send_job_can_outlive(production_values) -> None:
    # Tests shorten the lease to see recovery in seconds; production may not (found when the
    # resilience tests, which do, met a hard bound).
    assert settings_of(delivery_lease_seconds=15).delivery_lease_seconds == 15
    problems = production_problems(settings_of(**{**production_values, "delivery_lease_seconds": 60}))
    assert any("CHUONG_DELIVERY_LEASE_SECONDS" in problem for problem in problems)
    assert production_problems(settings_of(**production_values)) == []


def test_the_environment_is_normalised_before_it_is_checked() -> None:
    assert settings_of(environment=" Production").environment == "production"
    assert settings_of(environment="BENCH").environment == "bench"
