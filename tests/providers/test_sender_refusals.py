"""A provider refusing the sender (our token, key, certificate or rights) is not the device's
fault: every push fails alike until an operator fixes it, so those answers are retried (the
breaker counts them and the provider alert fires), never failed for good. Found in the clock-step
review: an APNs token dated wrong (`ExpiredProviderToken`) failed every push it carried."""

from __future__ import annotations

import pytest
from aioapns.common import NotificationResult

from notifications.providers import apns
from notifications.providers.base import Outcome


@pytest.mark.parametrize("reason", sorted(apns.SENDER_REASONS))
def test_apns_sender_refusals_are_retried(reason: str) -> None:
    result = apns.classify(NotificationResult("id-1", "403", description=reason))
    assert (result.outcome, result.error_code) == (Outcome.RETRY, reason)


@pytest.mark.parametrize(
    ("status", "reason", "outcome"),
    [
        ("410", "Unregistered", Outcome.INVALID_TOKEN),
        ("400", "BadDeviceToken", Outcome.INVALID_TOKEN),
        ("400", "DeviceTokenNotForTopic", Outcome.INVALID_TOKEN),
        ("400", "PayloadTooLarge", Outcome.FAILED),  # the push itself is wrong: no retry helps
        ("400", "BadCollapseId", Outcome.FAILED),
        ("429", "TooManyRequests", Outcome.RETRY),
        ("503", "ServiceUnavailable", Outcome.RETRY),
    ],
)
def test_apns_device_and_message_answers_keep_their_outcome(
    status: str, reason: str, outcome: Outcome
) -> None:
    assert apns.classify(NotificationResult("id-1", status, description=reason)).outcome is outcome
